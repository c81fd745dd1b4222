"""Layers whose cost does not grow when the fold axis is vmapped.

`jax.vmap` over a stack of fold models turns `lax.conv_general_dilated` into a
grouped convolution, which XLA's CPU backend runs several times slower per example
than the plain one. A convolution written as shifted views of the input followed by
matrix products instead becomes a batched matmul under vmap, which XLA runs at full
speed on CPU and GPU alike. `Conv` below is that formulation, with the same
parameter layout as `flax.linen.Conv` (kernel HWIO, bias O), so the two are
interchangeable and comparable (`experiments/` measures both).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def shifted_views_BxHxWxKC(x_BxHxWxC: jax.Array, kernel_size: int) -> jax.Array:
    """The kernel_size² 'same'-padded shifted copies of x, concatenated on channels.

    Channel block k = (dy * kernel_size + dx) holds x shifted by (dy - r, dx - r),
    r = kernel_size // 2, matching an HWIO kernel reshaped to (kernel_size² · C, O).
    """
    r = kernel_size // 2
    padded = jnp.pad(x_BxHxWxC, ((0, 0), (r, r), (r, r), (0, 0)))
    height, width = x_BxHxWxC.shape[1:3]
    views = [
        padded[:, dy : dy + height, dx : dx + width, :]
        for dy in range(kernel_size)
        for dx in range(kernel_size)
    ]
    return jnp.concatenate(views, axis=-1)


class Conv(nn.Module):
    """'Same'-padded, stride-1 2-D convolution (NHWC) as shifted views + one matmul."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    dtype: Any = None  # computation dtype; parameters stay float32
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
        in_features = x_BxHxWxC.shape[-1]
        kernel_HxWxIxO = self.param(
            "kernel", self.kernel_init, (self.kernel_size, self.kernel_size, in_features, self.features)
        )
        dtype = self.dtype or x_BxHxWxC.dtype
        patches = shifted_views_BxHxWxKC(x_BxHxWxC.astype(dtype), self.kernel_size)
        kernel_KCxO = kernel_HxWxIxO.reshape(-1, self.features).astype(dtype)
        y = jnp.einsum("bhwk,ko->bhwo", patches, kernel_KCxO)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
            y = y + bias.astype(dtype).reshape(1, 1, 1, -1)
        return y


def make_conv(impl: str, features: int, kernel_size: int = 3, dtype: Any = None, name: str | None = None) -> nn.Module:
    """The convolution named by a config's `conv_impl`: 'matmul' (shifted views) or 'xla' (nn.Conv)."""
    if impl == "matmul":
        return Conv(features, kernel_size, dtype=dtype, name=name)
    if impl == "xla":
        return nn.Conv(features, (kernel_size, kernel_size), padding="SAME", dtype=dtype, name=name)
    raise ValueError(f"model.conv_impl must be 'matmul' or 'xla', got {impl!r}")
