"""Small building blocks shared by the model families."""

from __future__ import annotations

import jax


def max_pool_2x2(x_BxHxWxC: jax.Array) -> jax.Array:
    """2×2 max pool with stride 2 (H and W even), as a reshape and a max.

    The same function as `flax.linen.max_pool(x, (2, 2), (2, 2))`, written so that its
    gradient is elementwise and fuses with its neighbours on every backend (the generic
    pool's gradient is a select-and-scatter, about 40% of the op time in a profile of the
    convnet's CPU step).
    """
    batch, height, width, channels = x_BxHxWxC.shape
    if height % 2 or width % 2:
        raise ValueError(f"max_pool_2x2 needs even height and width, got {height}×{width}")
    return x_BxHxWxC.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))


def check_poolable(image_hw: tuple[int, int], num_pools: int, model_name: str) -> None:
    """A clear error, before any computation, when `num_pools` 2×2 poolings cannot halve the ROI."""
    multiple = 2**num_pools
    if image_hw[0] % multiple or image_hw[1] % multiple:
        raise ValueError(
            f"{model_name} halves its input {num_pools} times, so the ROI's height and width must be "
            f"multiples of {multiple}; got {image_hw[0]}×{image_hw[1]} (change the ROI size or model.channels)"
        )
