"""Training of all cross-validation fold models at once, then held-out evaluation.

Read top to bottom: the fold-stacked state, the per-fold step and the program that runs it
over the fold axis, the step's timing for the runtime's measured choices, the training
loop, evaluation, then `train_and_evaluate`, the whole job. How this machine runs the step
(convolution formulation, fold execution, compiler options) is the runtime's
(`muscle_jax.runtime`); nothing here depends on the machine.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from muscle_jax import (augment, checkpoint, distributed, evaluate, metric_writer, optimizer, report, runtime, sharding,
                        validation)
from muscle_jax import folds as folds_lib
from muscle_jax.architecture import baseline as architecture_baseline
from muscle_jax import workdir as workdir_lib
from muscle_jax.data import pipeline
from muscle_jax.models import create_model, family_knobs

TrainState = train_state.TrainState


def create_fold_state(model, tx, seed: int, num_folds: int, image_shape_HxWxS: tuple[int, ...]) -> TrainState:
    """K independently initialised models, parameters and optimiser state stacked on axis 0.

    Fold k's initial parameters depend only on (seed, k).
    """

    def init_one(fold_index):
        key = jax.random.fold_in(jax.random.key(seed), fold_index)
        params = model.init(key, jnp.zeros((1, *image_shape_HxWxS), jnp.float32), train=False)["params"]
        return TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    return jax.jit(jax.vmap(init_one))(jnp.arange(num_folds))


def train_step(state: TrainState, images_BxHxWxS, targets_BxT, fold_index, seed: int, augment_config=None):
    """One optimiser step of one fold's model on its own batch (MSE on standardised targets).

    Random draws (dropout, augmentation) depend only on (seed, fold, step).
    """
    step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed + 1), fold_index), state.step)
    dropout_key, augment_key = jax.random.split(step_key)
    inputs = images_BxHxWxS.astype(jnp.float32) / 255.0
    if augment_config is not None and augment_config.enabled:
        inputs = augment.augment_images(augment_key, inputs, augment_config)

    def loss_fn(params):
        predictions_BxT = state.apply_fn({"params": params}, inputs, train=True, rngs={"dropout": dropout_key})
        return jnp.mean((predictions_BxT - targets_BxT) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def per_fold_train_step(seed: int, augment_config=None) -> Callable:
    """`train_step` for one fold: (state, images [B, ...], targets [B, T], fold index) → (state, metrics)."""

    def per_fold(state, images_BxHxWxS, targets_BxT, fold_index):
        return train_step(state, images_BxHxWxS, targets_BxT, fold_index, seed, augment_config)

    return per_fold


def make_fold_train_step(rt: runtime.Runtime, seed: int, augment_config=None):
    """(state_K, images [K, B, ...], targets [K, B, T], fold indices [K]) → (state_K, metrics_K),
    run over the fold axis as the runtime says, the state donated."""
    return rt.fold_program(per_fold_train_step(seed, augment_config), donate_argnums=0)


def build_state(config: ml_collections.ConfigDict, rt: runtime.Runtime, num_targets: int, num_folds: int,
                image_shape: tuple[int, ...], mesh) -> TrainState:
    """The initial fold-stacked state of the configured model, placed on the mesh."""
    model = create_model(config.model, num_targets, rt.conv_module, rt.dtype)
    tx = optimizer.make_optimizer(config.train)
    return sharding.shard_fold_state(create_fold_state(model, tx, config.seed, num_folds, image_shape), mesh)


def step_timer(config: ml_collections.ConfigDict, num_targets: int, num_folds: int, image_shape: tuple[int, ...],
               mesh, steps: int = 2) -> Callable[[runtime.Runtime], float]:
    """Seconds per example of the run's own train step under a candidate runtime, on synthetic
    data (the runtime's measured choices, `runtime.tune`): compiled once per candidate, then
    one untimed and `steps` timed steps; the median."""
    batch_size = config.train.batch_size
    rng = np.random.default_rng(0)
    batch = sharding.shard_batch({
        "image": rng.integers(0, 256, (num_folds, batch_size, *image_shape), dtype=np.uint8),
        "targets": rng.standard_normal((num_folds, batch_size, num_targets)).astype(np.float32),
    }, mesh, (num_folds, batch_size))
    fold_indices = jnp.arange(num_folds)
    programs: dict[tuple, list] = {}

    def seconds_per_example(rt: runtime.Runtime) -> float:
        key = (rt.conv, rt.xla_options, rt.fold_execution, rt.compute_dtype)
        if key not in programs:
            state = build_state(config, rt, num_targets, num_folds, image_shape, mesh)
            step = make_fold_train_step(rt, config.seed, config.augment).compile(
                state, batch["image"], batch["targets"], fold_indices)
            programs[key] = [step, state]
        step, state = programs[key]
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            state, metrics = step(state, batch["image"], batch["targets"], fold_indices)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
        programs[key][1] = state
        return statistics.median(times[1:]) / (num_folds * batch_size)

    return seconds_per_example


def resolve_runtime(config: ml_collections.ConfigDict, num_targets: int, folds: folds_lib.Folds,
                    image_shape: tuple[int, ...], mesh) -> runtime.Runtime:
    """The runtime of this run's training, measured on this machine where the config leaves it 'auto'."""
    step_key = {
        "model": family_knobs(config.model), "image_shape": list(image_shape), "batch_size": config.train.batch_size,
        "num_folds": folds.num_folds, "num_targets": num_targets, "augment": config.augment.enabled,
    }
    return runtime.resolve(
        config.runtime, num_fold_devices=mesh.shape[sharding.FOLD_AXIS], purpose="training",
        measure=step_timer(config, num_targets, folds.num_folds, image_shape, mesh), step_key=step_key,
    )


def train_folds(
    config: ml_collections.ConfigDict,
    rt: runtime.Runtime,
    state: TrainState,
    workdir: Path,
    source,
    index: pipeline.RecordIndex,
    folds: folds_lib.Folds,
    stats: pipeline.LabelStats,
    mesh,
) -> tuple[TrainState, dict[str, float]]:
    """Trains the initial fold-stacked `state` (or resumes from the workdir's latest checkpoint);
    returns the final state and timings.

    Each step is dispatched before the previous step's metrics are read, so the host reads
    and writes metrics while the device computes. Every step's loss and gradient norm are
    checked: training stops at the first non-finite one, and a checkpoint is saved only
    after the step that produced its state was checked.
    """
    checkpoints = checkpoint.manager(workdir, config.train.max_checkpoints)
    restored = checkpoint.restore_latest(checkpoints, state)
    start_step = 0
    if restored is not None:
        state, start_step = restored
        logging.info("resumed from the checkpoint at step %d", start_step)
    num_steps = config.train.num_steps
    global_KxB = (folds.num_folds, config.train.batch_size)
    batches = pipeline.train_batches(
        source, index, folds.train_KxN, stats, config.train.batch_size, config.seed,
        start_step, num_steps, config.train.input_threads, config.dataset.frame_stack,
        rows=sharding.process_batch_rows(mesh, *global_KxB),  # this process's block only
    )
    logging.info("%d folds on a %s device mesh %s, fold axis executed by %s",
                 folds.num_folds, rt.backend, dict(mesh.shape), rt.fold_execution)
    fold_indices = jnp.arange(folds.num_folds)
    step_fn = make_fold_train_step(rt, config.seed, config.augment)
    schedule = optimizer.learning_rate_schedule(config.train)
    fold_names = tuple(f"fold {k}" for k in range(folds.num_folds))
    examples_per_step = folds.num_folds * config.train.batch_size
    timings = {"compile_s": 0.0, "train_s": 0.0}
    window = {"start": time.perf_counter(), "steps": 0}

    def record(step: int, metrics_K) -> None:
        """Reads one step's metrics from the device, checks them, writes and logs them."""
        metrics_K = distributed.to_host(metrics_K)
        losses_K, grad_norms_K = np.asarray(metrics_K["loss"]), np.asarray(metrics_K["grad_norm"])
        optimizer.check_finite_loss(losses_K, step, fold_names)
        optimizer.check_finite_loss(grad_norms_K, step, fold_names, what="gradient norm")
        scalars = {"loss": float(losses_K.mean()), "grad_norm": float(grad_norms_K.mean()),
                   "learning_rate": float(schedule(step - 1))}
        scalars.update({f"loss/fold{k}": float(v) for k, v in enumerate(losses_K)})
        if writer is not None:  # process 0 writes the job's metrics
            writer.write(step, scalars)
        window["steps"] += 1
        if step % config.train.log_every == 0 or step == num_steps:
            elapsed = time.perf_counter() - window["start"]
            timings["train_s"] += elapsed
            logging.info("step %d/%d  loss %.4f (mean of %d folds)  %.2f steps/s  %.0f examples/s",
                         step, num_steps, scalars["loss"], folds.num_folds, window["steps"] / elapsed,
                         window["steps"] * examples_per_step / elapsed)
            window.update(start=time.perf_counter(), steps=0)

    pending = None  # (step, metrics) of the step before the one just dispatched
    writing = metric_writer.MetricWriter(workdir, start_step) if distributed.is_primary() else contextlib.nullcontext()
    with writing as writer:
        try:
            for step in range(start_step, num_steps):
                batch = sharding.shard_batch(next(batches), mesh, global_KxB)
                if step == start_step:
                    compile_start = time.perf_counter()
                    step_fn = step_fn.compile(state, batch["image"], batch["targets"], fold_indices)
                    timings["compile_s"] = time.perf_counter() - compile_start
                    window["start"] = time.perf_counter()
                state, metrics = step_fn(state, batch["image"], batch["targets"], fold_indices)
                if pending is not None:
                    record(*pending)
                pending = (step + 1, metrics)
                if (step + 1) % config.train.checkpoint_every == 0 or step + 1 == num_steps:
                    record(*pending)  # a state is saved only after the step that made it was finite
                    pending = None
                    checkpoint.save(checkpoints, step + 1, state)
            if pending is not None:
                record(*pending)
        finally:
            checkpoints.wait_until_finished()
            checkpoints.close()
    return state, timings


def evaluate_folds(
    config: ml_collections.ConfigDict,
    rt: runtime.Runtime,
    state: TrainState,
    source,
    index: pipeline.RecordIndex,
    folds: folds_lib.Folds,
    stats: pipeline.LabelStats,
) -> dict[str, Any]:
    """Each fold's model on its held-out records (over the fold axis as the runtime says), and the baselines."""
    eval_step = evaluate.make_eval_step(state.apply_fn, rt)
    mean_KxT, std_KxT = jnp.asarray(stats.mean_KxT), jnp.asarray(stats.std_KxT)
    sums, chunks = None, []
    for indices_KxE, valid_KxE in evaluate.test_chunks(folds, config.eval.batch_size):
        images = pipeline.read_model_inputs(source, index, indices_KxE, config.dataset.frame_stack)
        predictions_KxExT, sums_K = eval_step(
            state.params, images, index.targets_NxT[indices_KxE], valid_KxE, mean_KxT, std_KxT
        )
        predictions_KxExT, sums_K = distributed.to_host((predictions_KxExT, sums_K))
        sums = sums_K if sums is None else evaluate.merge_sums(sums, sums_K)
        chunks.append((indices_KxE, valid_KxE, np.asarray(predictions_KxExT)))
    predictions = {"cnn": evaluate.collect_predictions(chunks, len(index.targets_NxT), len(index.target_names))}
    per_fold = {"cnn": [evaluate.metrics_from_sums({k: v[f] for k, v in sums.items()}) for f in range(folds.num_folds)]}
    predictions["mean_predictor"] = evaluate.mean_predictor(index.targets_NxT, folds)
    if index.architecture_NxA is not None:
        predictions["ridge_architecture"] = evaluate.ridge_predictor(
            index.architecture_NxA, index.targets_NxT, folds, config.eval.ridge_alpha
        )
    if config.eval.measured_architecture_baseline:
        measured = architecture_baseline.measure_records(config.dataset, source, index)
        logging.info("architecture measured on %d of %d records for the ridge baseline",
                     int(measured.found_N.sum()), len(measured.found_N))
        predictions["ridge_measured_architecture"] = architecture_baseline.ridge_on_measured(
            measured, index.targets_NxT, folds, config.eval.ridge_alpha)
    for name in predictions:
        if name != "cnn":
            per_fold[name] = evaluate.fold_metrics(predictions[name], index.targets_NxT, folds, stats)
    return {"per_fold": per_fold, "predictions": predictions}


def _job_lock(workdir: Path):
    """The workdir's lock, held by the only process or by process 0 of a multi-process job."""
    return workdir_lib.locked(workdir) if distributed.is_primary() else contextlib.nullcontext()


def train_and_evaluate_on(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    source,
    info,
    timings: dict[str, float] | None = None,
    resume_with_changed_config: bool = False,
) -> dict[str, Any] | None:
    """The whole job on a given data source: folds, training, evaluation, reports in `workdir`.

    `timings` (seconds) of earlier phases, such as the dataset build, join the reported ones.
    The workdir is locked for the job; a workdir holding another run's checkpoints is refused
    unless `resume_with_changed_config` (muscle_jax/workdir.py). In a multi-process job
    (`muscle_jax.distributed`) every process trains and evaluates its part; process 0 holds the
    lock, writes the reports and returns the results, the others return None.
    """
    validation.check_config(config)
    workdir = Path(workdir).expanduser().resolve()
    with _job_lock(workdir):
        config_changes = workdir_lib.check_resume(workdir, config.to_dict(), info.full_name, resume_with_changed_config)
        start = time.perf_counter()
        index = pipeline.read_index(source, tuple(config.dataset.targets), tuple(config.dataset.architecture_features))
        pipeline.log_dataset(info, index)
        validation.check_against_data(config, index)
        folds = folds_lib.make_folds(
            index.groups(config.folds.group_by), config.folds.group_by, config.folds.num_folds,
            config.folds.max_train_groups,
        )
        stats = pipeline.label_stats(index.targets_NxT, folds.train_KxN)
        roi_h, roi_w, _ = source[0]["image"].shape
        image_shape = (roi_h, roi_w, config.dataset.frame_stack)  # the model's input: S stacked frames
        timings = {**(timings or {}), "index_s": time.perf_counter() - start}
        mesh = sharding.make_mesh(folds.num_folds)
        runtime_start = time.perf_counter()
        rt = resolve_runtime(config, len(index.target_names), folds, image_shape, mesh)
        timings["runtime_s"] = time.perf_counter() - runtime_start
        if distributed.is_primary():
            report.write_run_info(workdir, config, info, index, folds, stats, image_shape, rt, config_changes)
        state = build_state(config, rt, len(index.target_names), folds.num_folds, image_shape, mesh)
        state, train_timings = train_folds(config, rt, state, workdir, source, index, folds, stats, mesh)
        timings.update(train_timings)
        eval_start = time.perf_counter()
        evaluation = evaluate_folds(config, rt, state, source, index, folds, stats)
        timings["eval_s"] = time.perf_counter() - eval_start
        if not distributed.is_primary():
            return None
        return report.write_results(workdir, config, info, index, folds, evaluation, timings, rt)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path,
                       resume_with_changed_config: bool = False) -> dict[str, Any] | None:
    """Checks the config, locks the workdir, refuses a resume whose config differs, builds the
    configured dataset if needed (or again, when its inputs changed; once, by process 0 of a
    multi-process job), then trains and evaluates all folds; returns the results."""
    validation.check_config(config)
    workdir = Path(workdir).expanduser().resolve()
    with _job_lock(workdir):
        workdir_lib.check_resume(workdir, config.to_dict(), None, resume_with_changed_config)
        build_start = time.perf_counter()
        source, info = distributed.primary_first(lambda: pipeline.load_source(config.dataset))
        build_s = time.perf_counter() - build_start
        logging.info("dataset ready in %.1f s", build_s)
        return train_and_evaluate_on(config, workdir, source, info, {"dataset_s": build_s}, resume_with_changed_config)
