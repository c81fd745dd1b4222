"""Normalisation layers chosen by name (an ablation knob of every model family)."""

from __future__ import annotations

import flax.linen as nn

# He initialisation for layers followed by a ReLU: it keeps the activations' variance from
# halving at every layer, which under LeCun initialisation let one fold of the default
# 8-convolution convnet collapse to a constant output (0.8% of last-stage units active).
RELU_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


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


def normalize_input(images_BxHxWxC, mode: str):
    """'none' → as given; 'per_image' → each image shifted and scaled to zero mean, unit sd.

    Per-image standardisation removes differences of overall gain and contrast between
    scanners and participants, which a held-out participant would otherwise bring unseen.
    """
    if mode == "none":
        return images_BxHxWxC
    if mode == "per_image":
        mean = images_BxHxWxC.mean(axis=(1, 2, 3), keepdims=True)
        std = images_BxHxWxC.std(axis=(1, 2, 3), keepdims=True)
        return (images_BxHxWxC - mean) / (std + 1e-6)
    raise ValueError(f"model.input_norm must be 'none' or 'per_image', got {mode!r}")
