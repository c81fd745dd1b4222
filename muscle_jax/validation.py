"""Settings checked before any work: one message naming the field, its value and what is allowed.

`check_config` runs before a dataset is built or a model compiled; `check_against_data`
once the dataset's groups are known (fold and group counts).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import ml_collections
import numpy as np

from muscle_jax import runtime
from muscle_jax.data import pipeline
from muscle_jax.models import family_knobs
from muscle_jax.optimizer import OPTIMIZERS


def _integer_at_least(minimum: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum,
            f"an integer ≥ {minimum}")


def _number(low: float, high: float = math.inf, low_open: bool = False) -> tuple[Callable[[Any], bool], str]:
    def ok(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (
            v > low if low_open else v >= low) and v <= high
    bound = f"> {low}" if low_open else f"≥ {low}"
    return ok, f"a finite number {bound}" + (f" and ≤ {high}" if math.isfinite(high) else "")


def _range(low: float, low_open: bool = True) -> tuple[Callable[[Any], bool], str]:
    def ok(v):
        return (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
                and (v[0] > low if low_open else v[0] >= low) and v[0] <= v[1] and math.isfinite(v[1]))
    return ok, f"(low, high) with {'0 <' if low_open else '0 ≤'} low ≤ high"


def _hw() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in ((), []) or (isinstance(v, (tuple, list)) and len(v) == 2
                                        and all(isinstance(x, int) and x > 0 for x in v)),
            "() (the dataset's own) or (rows, columns), both positive integers")


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "train.num_steps": _integer_at_least(1),
    "train.batch_size": _integer_at_least(1),
    "train.warmup_steps": _integer_at_least(0),
    "train.learning_rate": _number(0.0, low_open=True),
    "train.weight_decay": _number(0.0),
    "train.grad_clip_norm": _number(0.0),
    "train.final_lr_fraction": _number(0.0, 1.0),
    "train.log_every": _integer_at_least(1),
    "train.checkpoint_every": _integer_at_least(1),
    "train.max_checkpoints": _integer_at_least(1),
    "train.input_threads": _integer_at_least(1),
    "eval.batch_size": _integer_at_least(1),
    "eval.ridge_alpha": _number(0.0),
    "dataset.frame_stack": _integer_at_least(1),
    "dataset.roi_hw": _hw(),
    "folds.num_folds": _integer_at_least(0),
    "folds.max_train_groups": _integer_at_least(0),
    "augment.max_shift_px": _integer_at_least(0),
    "augment.gamma": _range(0.0),
    "augment.gain": _range(0.0),
    "augment.offset": _number(0.0),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "train.optimizer": OPTIMIZERS,
    "folds.group_by": ("participant", "trial"),
}


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def check_config(config: ml_collections.ConfigDict) -> None:
    """Refuses a setting out of range, a model knob the family lacks or a runtime choice that
    does not exist, with one message naming the field; before any work."""
    for field, (ok, allowed) in RULES.items():
        value = _get(config, field)
        if not ok(value):
            raise ValueError(f"config field {field} is {value!r}; allowed: {allowed}")
    for field, choices in CHOICES.items():
        value = _get(config, field)
        if value not in choices:
            raise ValueError(f"config field {field} is {value!r}; allowed: {', '.join(map(repr, choices))}")
    family_knobs(config.model)
    runtime.validate(config.runtime)


def check_against_data(config: ml_collections.ConfigDict, index: pipeline.RecordIndex) -> None:
    """Fold and group counts against the dataset's groups (before any model is built)."""
    groups = np.unique(index.groups(config.folds.group_by))
    num_folds = config.folds.num_folds
    if num_folds and not 2 <= num_folds <= len(groups):
        raise ValueError(f"config field folds.num_folds is {num_folds}; allowed: 0 (leave one {config.folds.group_by} "
                         f"out) or 2 to {len(groups)}, the dataset's {config.folds.group_by}s")
    held_out_per_fold = 1 if num_folds == 0 else math.ceil(len(groups) / num_folds)
    available = len(groups) - held_out_per_fold
    if config.folds.max_train_groups > available:
        raise ValueError(f"config field folds.max_train_groups is {config.folds.max_train_groups}; allowed: 0 (all) or "
                         f"1 to {available}, the {config.folds.group_by}s a fold can train on")
