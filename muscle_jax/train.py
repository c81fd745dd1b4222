"""Training of all cross-validation fold models at once, then held-out evaluation.

Read top to bottom: the optimiser, the fold-stacked state, the per-fold step and its
mapping over the fold axis, then `train_and_evaluate`, the whole job.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from muscle_jax import augment, checkpoint, evaluate, folds as folds_lib, report, sharding, xla_cpu
from muscle_jax.data import pipeline
from muscle_jax.models import create_model

TrainState = train_state.TrainState


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Gradient clipping, then Adam/AdamW on a linear-warmup cosine schedule."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train_config.learning_rate,
        warmup_steps=train_config.warmup_steps,
        decay_steps=max(train_config.num_steps, train_config.warmup_steps + 1),
        end_value=train_config.learning_rate * 0.01,
    )
    if train_config.optimizer == "adamw":
        optimizer = optax.adamw(schedule, weight_decay=train_config.weight_decay)
    elif train_config.optimizer == "adam":
        optimizer = optax.adam(schedule)
    else:
        raise ValueError(f"train.optimizer must be 'adam' or 'adamw', got {train_config.optimizer!r}")
    return optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), optimizer)


def create_fold_state(model, tx, seed: int, num_folds: int, image_shape_HxWx1: tuple[int, ...]) -> TrainState:
    """K independently initialised models, parameters and optimiser state stacked on axis 0.

    Fold k's initial parameters depend only on (seed, k).
    """

    def init_one(fold_index):
        key = jax.random.fold_in(jax.random.key(seed), fold_index)
        params = model.init(key, jnp.zeros((1, *image_shape_HxWx1), jnp.float32), train=False)["params"]
        return TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    return jax.jit(jax.vmap(init_one))(jnp.arange(num_folds))


def train_step(state: TrainState, images_BxHxWx1, targets_BxT, fold_index, seed: int, augment_config=None):
    """One optimiser step of one fold's model on its own batch (MSE on standardised targets).

    Random draws (dropout, augmentation) depend only on (seed, fold, step).
    """
    step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed + 1), fold_index), state.step)
    dropout_key, augment_key = jax.random.split(step_key)
    inputs = images_BxHxWx1.astype(jnp.float32) / 255.0
    if augment_config is not None and augment_config.enabled:
        inputs = augment.augment_images(augment_key, inputs, augment_config)

    def loss_fn(params):
        predictions_BxT = state.apply_fn({"params": params}, inputs, train=True, rngs={"dropout": dropout_key})
        return jnp.mean((predictions_BxT - targets_BxT) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def make_fold_train_step(
    seed: int, fold_execution: str, augment_config=None, compiler_options: dict[str, Any] | None = None
) -> Callable:
    """(state_K, batch with [K, B, ...] arrays) → (state_K, metrics_K), jitted, the state donated.

    `compiler_options` are XLA's; None means the tuned ones on CPU (`xla_cpu.compiler_options`,
    with the memory-optimised schedule when the folds are unrolled).
    """

    def fold_step(state, images_KxBxHxWx1, targets_KxBxT):
        per_fold = lambda s, x, y, k: train_step(s, x, y, k, seed, augment_config)  # noqa: E731
        fold_indices = jnp.arange(images_KxBxHxWx1.shape[0])
        return folds_lib.over_folds(per_fold, fold_execution)(state, images_KxBxHxWx1, targets_KxBxT, fold_indices)

    if compiler_options is None:
        compiler_options = xla_cpu.compiler_options(unrolled_folds=fold_execution == "unroll")
    return xla_cpu.jit(fold_step, compiler_options, donate_argnums=0)


def fold_placement(config: ml_collections.ConfigDict, num_folds: int):
    """The device mesh of the fold-stacked state and how the fold axis is executed on it."""
    mesh = sharding.make_mesh(num_folds)
    execution = folds_lib.resolve_execution(config.train.fold_execution, jax.default_backend(), mesh.shape[sharding.FOLD_AXIS])
    return mesh, execution


def _check_finite(losses_K: np.ndarray, step: int) -> None:
    bad = np.flatnonzero(~np.isfinite(losses_K))
    if bad.size:
        raise FloatingPointError(
            f"training stopped: fold {int(bad[0])} has a non-finite loss ({losses_K[bad[0]]}) at step {step}; "
            "lower train.learning_rate or check the input data"
        )


def train_folds(
    config: ml_collections.ConfigDict,
    workdir: Path,
    source,
    index: pipeline.RecordIndex,
    folds: folds_lib.Folds,
    stats: pipeline.LabelStats,
    image_shape: tuple[int, ...],
) -> tuple[TrainState, dict[str, float]]:
    """Trains (or resumes training of) the fold-stacked models; returns the final state and timings."""
    model = create_model(config.model, len(index.target_names))
    tx = make_optimizer(config.train)
    mesh, execution = fold_placement(config, folds.num_folds)
    state = sharding.shard_fold_state(create_fold_state(model, tx, config.seed, folds.num_folds, image_shape), mesh)
    checkpoints = checkpoint.manager(workdir, config.train.max_checkpoints)
    restored = checkpoint.restore_latest(checkpoints, state)
    start_step = 0
    if restored is not None:
        state, start_step = restored
        logging.info("resumed from the checkpoint at step %d", start_step)
    num_steps = config.train.num_steps
    batches = pipeline.train_batches(
        source, index, folds.train_KxN, stats, config.train.batch_size, config.seed,
        start_step, num_steps, config.train.input_threads, config.dataset.frame_stack,
    )
    logging.info("%d folds on a %s device mesh %s, fold axis executed by %s",
                 folds.num_folds, jax.default_backend(), dict(mesh.shape), execution)
    step_fn = make_fold_train_step(config.seed, execution, config.augment)
    examples_per_step = folds.num_folds * config.train.batch_size
    timings = {"compile_s": 0.0, "train_s": 0.0}
    window_start, window_steps, metrics = time.perf_counter(), 0, None
    for step in range(start_step, num_steps):
        batch = sharding.shard_batch(next(batches), mesh)
        if step == start_step:
            compile_start = time.perf_counter()
            step_fn = step_fn.lower(state, batch["image"], batch["targets"]).compile()
            timings["compile_s"] = time.perf_counter() - compile_start
            window_start = time.perf_counter()
        # The next step is dispatched before this one's metrics are read, so host and device overlap.
        state, metrics = step_fn(state, batch["image"], batch["targets"])
        window_steps += 1
        done = step + 1
        if done % config.train.log_every == 0 or done == num_steps:
            losses_K = np.asarray(metrics["loss"])
            _check_finite(losses_K, done)
            elapsed = time.perf_counter() - window_start
            timings["train_s"] += elapsed
            logging.info(
                "step %d/%d  loss %.4f (mean of %d folds)  %.2f steps/s  %.0f examples/s",
                done, num_steps, float(losses_K.mean()), folds.num_folds,
                window_steps / elapsed, window_steps * examples_per_step / elapsed,
            )
            window_start, window_steps = time.perf_counter(), 0
        if done % config.train.checkpoint_every == 0 or done == num_steps:
            checkpoint.save(checkpoints, done, state)
    if metrics is not None:
        _check_finite(np.asarray(metrics["loss"]), num_steps)
    checkpoints.wait_until_finished()
    checkpoints.close()
    return state, timings


def evaluate_folds(
    config: ml_collections.ConfigDict,
    state: TrainState,
    source,
    index: pipeline.RecordIndex,
    folds: folds_lib.Folds,
    stats: pipeline.LabelStats,
) -> dict[str, Any]:
    """Each fold's model on its held-out records (vmapped over folds), and the baselines."""
    _, execution = fold_placement(config, folds.num_folds)
    eval_step = evaluate.make_eval_step(state.apply_fn, execution)
    mean_KxT, std_KxT = jnp.asarray(stats.mean_KxT), jnp.asarray(stats.std_KxT)
    sums, chunks = None, []
    for indices_KxE, valid_KxE in evaluate.test_chunks(folds, config.eval.batch_size):
        images = pipeline.read_model_inputs(source, index, indices_KxE, config.dataset.frame_stack)
        predictions_KxExT, sums_K = eval_step(
            state.params, images, index.targets_NxT[indices_KxE], valid_KxE, mean_KxT, std_KxT
        )
        sums_K = jax.device_get(sums_K)
        sums = sums_K if sums is None else evaluate.merge_sums(sums, sums_K)
        chunks.append((indices_KxE, valid_KxE, np.asarray(predictions_KxExT)))
    predictions = {"cnn": evaluate.collect_predictions(chunks, len(index.targets_NxT), len(index.target_names))}
    per_fold = {"cnn": [evaluate.metrics_from_sums({k: v[f] for k, v in sums.items()}) for f in range(folds.num_folds)]}
    predictions["mean_predictor"] = evaluate.mean_predictor(index.targets_NxT, folds)
    if index.architecture_NxA is not None:
        predictions["ridge_architecture"] = evaluate.ridge_predictor(
            index.architecture_NxA, index.targets_NxT, folds, config.eval.ridge_alpha
        )
    for name in predictions:
        if name != "cnn":
            per_fold[name] = evaluate.fold_metrics(predictions[name], index.targets_NxT, folds)
    return {"per_fold": per_fold, "predictions": predictions}


def train_and_evaluate_on(
    config: ml_collections.ConfigDict, workdir: str | Path, source, info, timings: dict[str, float] | None = None
) -> dict[str, Any]:
    """The whole job on a given data source: folds, training, evaluation, reports in `workdir`.

    `timings` (seconds) of earlier phases, such as the dataset build, join the reported ones.
    """
    workdir = Path(workdir).expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    index = pipeline.read_index(source, tuple(config.dataset.targets), tuple(config.dataset.architecture_features))
    pipeline.log_dataset(info, index)
    folds = folds_lib.make_folds(
        index.groups(config.folds.group_by), config.folds.group_by, config.folds.num_folds, config.folds.max_train_groups
    )
    stats = pipeline.label_stats(index.targets_NxT, folds.train_KxN)
    roi_h, roi_w, _ = source[0]["image"].shape
    image_shape = (roi_h, roi_w, config.dataset.frame_stack)  # the model's input: S stacked frames
    report.write_run_info(workdir, config, index, folds, stats, image_shape)
    timings = {**(timings or {}), "index_s": time.perf_counter() - start}
    state, train_timings = train_folds(config, workdir, source, index, folds, stats, image_shape)
    timings.update(train_timings)
    eval_start = time.perf_counter()
    evaluation = evaluate_folds(config, state, source, index, folds, stats)
    timings["eval_s"] = time.perf_counter() - eval_start
    return report.write_results(workdir, config, info, index, folds, evaluation, timings)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Builds the configured dataset if needed, then trains and evaluates all folds; returns results."""
    build_start = time.perf_counter()
    source, info = pipeline.load_source(config.dataset)
    build_s = time.perf_counter() - build_start
    logging.info("dataset ready in %.1f s", build_s)
    return train_and_evaluate_on(config, workdir, source, info, timings={"dataset_s": build_s})
