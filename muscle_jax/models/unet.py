"""A small U-Net (Ronneberger et al. 2015) for aponeurosis masks in B-mode frames.

Encoder: `depth` levels of two 3×3 convolutions (He-initialised; optional GroupNorm; ReLU) followed by 2×2 max
pooling, widths `features · 2^level`; a bottleneck at the coarsest level; decoder:
2×2 transposed convolution, concatenation with the encoder's features at that level, two
3×3 convolutions. A 1×1 convolution gives one logit per pixel. Input height and width
must be divisible by 2^depth.

Config knobs (`config.model` in `configs/segmentation.py`): `features`, `depth`,
`norm_groups` (0 turns GroupNorm off). The 3×3 convolutions are `conv`, handed in like the
other families' (default `flax.linen.Conv`).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from muscle_jax.models.normalization import RELU_INIT


class ConvBlock(nn.Module):
    """Two 'same' 3×3 convolutions, each followed by GroupNorm (optional) and ReLU."""

    features: int
    norm_groups: int = 4
    conv: Callable[..., nn.Module] = nn.Conv

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
        for i in range(2):
            x_BxHxWxC = self.conv(self.features, (3, 3), kernel_init=RELU_INIT, name=f"conv{i}")(x_BxHxWxC)
            if self.norm_groups:
                x_BxHxWxC = nn.GroupNorm(num_groups=min(self.norm_groups, self.features), name=f"norm{i}")(x_BxHxWxC)
            x_BxHxWxC = nn.relu(x_BxHxWxC)
        return x_BxHxWxC


class UNet(nn.Module):
    """Encoder–decoder returning per-pixel logits (B×H×W×out_channels) for B×H×W×C input."""

    features: int = 8
    depth: int = 4
    out_channels: int = 1
    norm_groups: int = 4
    conv: Callable[..., nn.Module] = nn.Conv

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
        factor = 2**self.depth
        height, width = x_BxHxWxC.shape[1:3]
        if height % factor or width % factor:
            raise ValueError(
                f"UNet input height and width must be divisible by 2^depth = {factor}, got {height}×{width}"
            )
        block = lambda f, name: ConvBlock(f, self.norm_groups, self.conv, name=name)  # noqa: E731
        skips = []
        x = x_BxHxWxC
        for level in range(self.depth):
            x = block(self.features * 2**level, f"down{level}")(x)
            skips.append(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = block(self.features * 2**self.depth, "bottleneck")(x)
        for level in reversed(range(self.depth)):
            width_here = self.features * 2**level
            x = nn.ConvTranspose(width_here, (2, 2), strides=(2, 2), name=f"upsample{level}")(x)
            x = jnp.concatenate([x, skips[level]], axis=-1)
            x = block(width_here, f"up{level}")(x)
        return nn.Conv(self.out_channels, (1, 1), name="logits")(x)
