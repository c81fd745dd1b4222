"""The optimiser of every training in the project, and the stop at the first non-finite loss.

Both the fold models (`train.py`) and the aponeurosis U-Net (`segmentation/train.py`) are
optimised by `make_optimizer` from their config's `train` section: gradient clipping by
global norm (`grad_clip_norm`, 0 = none), then Adam or AdamW (`optimizer`, `weight_decay`)
on a schedule that warms up linearly over `warmup_steps` to `learning_rate` and decays
along a cosine to `final_lr_fraction` × `learning_rate` at `num_steps`.
"""

from __future__ import annotations

import ml_collections
import numpy as np
import optax

OPTIMIZERS = ("adam", "adamw")


def learning_rate_schedule(train_config: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warm-up, then cosine decay to `final_lr_fraction` of the peak."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train_config.learning_rate,
        warmup_steps=train_config.warmup_steps,
        decay_steps=max(train_config.num_steps, train_config.warmup_steps + 1),
        end_value=train_config.learning_rate * train_config.final_lr_fraction,
    )


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Clipping (unless `grad_clip_norm` is 0), then Adam/AdamW on `learning_rate_schedule`."""
    schedule = learning_rate_schedule(train_config)
    if train_config.optimizer == "adamw":
        optimizer = optax.adamw(schedule, weight_decay=train_config.weight_decay)
    elif train_config.optimizer == "adam":
        optimizer = optax.adam(schedule)
    else:
        raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {train_config.optimizer!r}")
    if train_config.grad_clip_norm:
        return optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), optimizer)
    return optimizer


def check_finite_loss(losses: np.ndarray, step: int, names: tuple[str, ...] | None = None, what: str = "loss") -> None:
    """Stops training at the first non-finite loss (or other `what`) with a message naming the
    step and which model (`names[i]` for value i, e.g. its fold) went wrong."""
    losses = np.atleast_1d(np.asarray(losses))
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        which = names[int(bad[0])] if names else "the model"
        raise FloatingPointError(
            f"training stopped: {which} has a non-finite {what} ({losses[bad[0]]}) at step {step}; "
            "lower train.learning_rate or check the input data"
        )
