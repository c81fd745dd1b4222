"""The fold models of a trained run, used together on new frames.

`load(workdir)` reads run.json (config, targets, label statistics, image shape) and the latest
checkpoint; `Ensemble.predict` runs every fold model on the same frames (vmapped over folds)
and returns the mean and standard deviation across folds, in physical units.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from muscle_jax import checkpoint, evaluate, folds, xla_cpu
from muscle_jax.data.pipeline import LabelStats
from muscle_jax.models import create_model


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """K trained fold models and what maps their outputs to physical units."""

    config: ml_collections.ConfigDict
    targets: tuple[str, ...]
    image_shape: tuple[int, int, int]
    params: Any  # fold-stacked, leading axis K
    stats: LabelStats
    step: int
    _predict_chunk: Callable = dataclasses.field(repr=False, compare=False)

    @property
    def num_folds(self) -> int:
        return self.stats.mean_KxT.shape[0]

    def predict(self, images_NxHxWxS: np.ndarray, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """(mean_NxT, std_NxT) across the fold models, in the targets' physical units, from uint8
        model inputs (S > 1 for a run trained on frame stacks: see `pipeline.stack_sequence`)."""
        images_NxHxWxS = np.asarray(images_NxHxWxS)
        if images_NxHxWxS.ndim != 4 or tuple(images_NxHxWxS.shape[1:]) != self.image_shape:
            raise ValueError(
                f"the run was trained on ROI images of shape {self.image_shape}; got a batch of shape "
                f"{images_NxHxWxS.shape} (expected N×{'×'.join(map(str, self.image_shape))})"
            )
        if images_NxHxWxS.dtype != np.uint8:
            raise ValueError(f"images must be uint8 like the dataset's, got {images_NxHxWxS.dtype}")
        means, stds = [], []
        for start in range(0, len(images_NxHxWxS), batch_size):
            chunk = images_NxHxWxS[start : start + batch_size]
            padded = np.zeros((batch_size, *self.image_shape), np.uint8)
            padded[: len(chunk)] = chunk  # one compiled shape for every chunk
            predictions_KxBxT = np.asarray(self._predict_chunk(self.params, padded))[:, : len(chunk)]
            means.append(predictions_KxBxT.mean(axis=0))
            stds.append(predictions_KxBxT.std(axis=0, ddof=1) if self.num_folds > 1 else np.zeros_like(means[-1]))
        num_targets = len(self.targets)
        if not means:
            return np.zeros((0, num_targets), np.float32), np.zeros((0, num_targets), np.float32)
        return np.concatenate(means).astype(np.float32), np.concatenate(stds).astype(np.float32)


def load(workdir: str | Path) -> Ensemble:
    """The trained fold models of `workdir` (a finished or interrupted run's latest checkpoint)."""
    from muscle_jax import train  # train imports this package's siblings; keep the import local

    workdir = Path(workdir).expanduser().resolve()
    run_file = workdir / "run.json"
    if not run_file.exists():
        raise FileNotFoundError(f"{run_file} not found: {workdir} is not a muscle_jax training run")
    run = json.loads(run_file.read_text())
    config = ml_collections.ConfigDict(run["config"])
    targets = tuple(run["targets"])
    image_shape = tuple(run["image_shape"])
    stats = LabelStats.from_json(run["label_stats"])
    on_cpu = jax.default_backend() == "cpu"
    model_config = config.model.copy_and_resolve_references()
    if on_cpu and "conv_impl" in model_config:
        # Every formulation has the same parameters. For inference on a CPU, XLA's convolution
        # with the folds one after another (lax.map) ran 4.9× faster than the vmapped matmul
        # form (59.9 vs 12.3 frames/s, 6 folds, batch 128, side by side in one process).
        with model_config.unlocked():
            model_config.conv_impl = "xla"
    model = create_model(model_config, len(targets))
    # Only the shapes are needed to restore into: tracing the fold-stacked initialisation is
    # far cheaper than running it.
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    like_state = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
        jax.eval_shape(lambda: train.create_fold_state(
            model, train.make_optimizer(config.train), config.seed, run["num_folds"], image_shape)),
    )
    checkpoints = checkpoint.manager(workdir, read_only=True)
    restored = checkpoint.restore_latest(checkpoints, like_state)
    checkpoints.close()
    if restored is None:
        raise FileNotFoundError(f"{workdir / 'checkpoints'} holds no checkpoint: the run has not trained yet")
    state, step = restored
    mean_KxT, std_KxT = jnp.asarray(stats.mean_KxT), jnp.asarray(stats.std_KxT)

    def predict_all_folds(params, images_BxHxWx1):
        per_fold = lambda p, mean_T, std_T: evaluate.predict_physical(model.apply, p, images_BxHxWx1, mean_T, std_T)  # noqa: E731
        return folds.over_folds(per_fold, "map" if on_cpu else "vmap")(params, mean_KxT, std_KxT)

    return Ensemble(
        config=config, targets=targets, image_shape=image_shape, params=state.params, stats=stats, step=step,
        _predict_chunk=xla_cpu.jit(predict_all_folds),
    )
