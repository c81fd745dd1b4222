"""Pre-activation residual network with configurable depth and width."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax

from muscle_jax.models import layers
from muscle_jax.models.normalization import RELU_INIT, make_norm, normalize_input


class PreActBlock(nn.Module):
    """norm → ReLU → conv3×3 → norm → ReLU → conv3×3, plus a 1×1 projection when widths differ."""

    features: int
    norm: str
    conv: Callable[..., nn.Module] = nn.Conv
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
        y = nn.relu(make_norm(self.norm, x_BxHxWxC.shape[-1])(x_BxHxWxC))
        shortcut = x_BxHxWxC
        if x_BxHxWxC.shape[-1] != self.features:
            shortcut = nn.Dense(self.features, use_bias=False, dtype=self.dtype, name="project")(y)
        y = self.conv(self.features, (3, 3), dtype=self.dtype, kernel_init=RELU_INIT, name="conv0")(y)
        y = nn.relu(make_norm(self.norm, self.features)(y))
        y = self.conv(self.features, (3, 3), dtype=self.dtype, kernel_init=RELU_INIT, name="conv1")(y)
        return shortcut + y


class ResNet(nn.Module):
    """Stem conv, then `blocks_per_stage[i]` pre-activation blocks of width `channels[i]`
    with 2×2 max-pooling between stages, then norm → ReLU → GAP → [Dense(hidden) → ReLU] →
    Dropout → Dense. `hidden` = 0 leaves out the hidden layer. `conv` and `dtype` are not
    knobs: the runtime hands them in (`muscle_jax.runtime`)."""

    num_targets: int
    channels: Sequence[int] = (16, 32, 64, 128)
    blocks_per_stage: Sequence[int] = (1, 1, 1, 1)
    hidden: int = 0
    dropout: float = 0.0
    norm: str = "group"
    input_norm: str = "none"
    conv: Callable[..., nn.Module] = nn.Conv
    dtype: Any = None

    @nn.compact
    def __call__(self, images_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        if len(self.blocks_per_stage) != len(self.channels):
            raise ValueError(
                f"model.blocks_per_stage {tuple(self.blocks_per_stage)} and model.channels "
                f"{tuple(self.channels)} must have the same length"
            )
        layers.check_poolable(images_BxHxWxC.shape[1:3], len(self.channels) - 1, "resnet")
        x = normalize_input(images_BxHxWxC, self.input_norm)
        x = self.conv(self.channels[0], (3, 3), dtype=self.dtype, kernel_init=RELU_INIT, name="stem")(x)
        for stage, (features, blocks) in enumerate(zip(self.channels, self.blocks_per_stage)):
            if stage > 0:
                x = layers.max_pool_2x2(x)
            for block in range(blocks):
                x = PreActBlock(features, self.norm, self.conv, self.dtype, name=f"stage{stage}_block{block}")(x)
        x = nn.relu(make_norm(self.norm, x.shape[-1])(x))
        x_BxC = x.mean(axis=(1, 2))
        if self.hidden:
            x_BxC = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, kernel_init=RELU_INIT, name="hidden")(x_BxC))
        x_BxC = nn.Dropout(self.dropout, deterministic=not train)(x_BxC)
        return nn.Dense(self.num_targets, dtype=self.dtype, name="head")(x_BxC).astype("float32")
