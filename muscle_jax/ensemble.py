"""The fold models of a trained run, used together on new frames.

`load(workdir)` reads run.json (the model's knobs, targets, label statistics, image shape) and
the parameters of the latest checkpoint; `Ensemble.predict` runs every fold model on the same
frames (over the fold axis as this machine's runtime runs inference) and returns the mean and
standard deviation across folds, in physical units.
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

from muscle_jax import checkpoint, evaluate, runtime
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


# Runs written before the runtime split kept how a machine ran the model inside config.model.
_RUNTIME_KEYS_OF_OLD_RUNS = ("conv_impl", "dtype")


def model_knobs_of_run(run: dict[str, Any]) -> dict[str, Any]:
    """What the run's model is: its recorded knobs (run.json's `model`), or, for a run written
    before the runtime split, its config's model section without the machine's choices."""
    if "model" in run:
        return run["model"]
    return {k: v for k, v in run["config"]["model"].items() if k not in _RUNTIME_KEYS_OF_OLD_RUNS}


def read_run(workdir: str | Path) -> dict[str, Any]:
    """A training run's run.json; an error naming the folder when it is not a run."""
    run_file = Path(workdir).expanduser().resolve() / "run.json"
    if not run_file.exists():
        raise FileNotFoundError(f"{run_file} not found: {Path(workdir)} is not a muscle_jax training run")
    return json.loads(run_file.read_text())


def load(workdir: str | Path, settings: ml_collections.ConfigDict | None = None) -> Ensemble:
    """The trained fold models of `workdir` (a finished or interrupted run's latest checkpoint),
    run as this machine's runtime says for inference (`settings`: a `config.runtime` section;
    default: all 'auto')."""
    workdir = Path(workdir).expanduser().resolve()
    run = read_run(workdir)
    config = ml_collections.ConfigDict(run["config"])
    targets = tuple(run["targets"])
    image_shape = tuple(run["image_shape"])
    stats = LabelStats.from_json(run["label_stats"])
    rt = runtime.resolve(settings or runtime.default_settings(), purpose="inference")
    model = create_model(model_knobs_of_run(run), len(targets), rt.conv_module, rt.dtype)
    # Only the parameters' shapes are needed to restore into (not the optimiser state):
    # tracing the fold-stacked initialisation is far cheaper than running it.
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    like_params = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
        jax.eval_shape(jax.vmap(lambda key: model.init(key, jnp.zeros((1, *image_shape)), train=False)["params"]),
                       jax.random.split(jax.random.key(0), run["num_folds"])),
    )
    checkpoints = checkpoint.manager(workdir, read_only=True)
    restored = checkpoint.restore_latest_params(checkpoints, like_params)
    checkpoints.close()
    if restored is None:
        raise FileNotFoundError(f"{workdir / 'checkpoints'} holds no checkpoint: the run has not trained yet")
    params, step = restored
    mean_KxT, std_KxT = jnp.asarray(stats.mean_KxT), jnp.asarray(stats.std_KxT)

    def predict_one_fold(params, images_BxHxWxS, mean_T, std_T):
        return evaluate.predict_physical(model.apply, params, images_BxHxWxS, mean_T, std_T)

    program = rt.fold_program(predict_one_fold)
    return Ensemble(
        config=config, targets=targets, image_shape=image_shape, params=params, stats=stats, step=step,
        _predict_chunk=lambda params, images: program(params, _fold_copies(images, mean_KxT.shape[0]), mean_KxT, std_KxT),
    )


def _fold_copies(images_BxHxWxS: np.ndarray, num_folds: int) -> jax.Array:
    """The same batch for every fold model: [K, B, ...] (a broadcast, not K copies in memory)."""
    return jnp.broadcast_to(jnp.asarray(images_BxHxWxS), (num_folds, *images_BxHxWxS.shape))
