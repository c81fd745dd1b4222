"""Normalisation layers chosen by name (an ablation knob of every model family)."""

from __future__ import annotations

import flax.linen as nn


def make_norm(name: str, features: int):
    """'none' → identity, 'group' → GroupNorm (≤ 8 groups that divide `features`), 'layer' → LayerNorm.

    Batch norm is deliberately absent: its running statistics would couple the examples
    of a batch and complicate the fold-stacked state, and the study's regressors do not need it.
    """
    if name == "none":
        return lambda x: x
    if name == "group":
        groups = next(g for g in (8, 4, 2, 1) if features % g == 0)
        return nn.GroupNorm(num_groups=groups)
    if name == "layer":
        return nn.LayerNorm()
    raise ValueError(f"model.norm must be 'none', 'group' or 'layer', got {name!r}")
