"""The pinned plain convolutional regressor (the CPU default and the benchmark model)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax

from muscle_jax.models import layers
from muscle_jax.models.normalization import RELU_INIT, make_norm, normalize_input


class ConvNet(nn.Module):
    """Stages of [conv3×3 → ReLU → conv3×3 → ReLU → maxpool 2×2], then GAP → Dense → ReLU → Dropout → Dense.

    `norm` ('none' | 'group' | 'layer') inserts a normalisation before each ReLU; it is
    an ablation knob and off by default, as in the pinned design. `conv` and `dtype` are
    not knobs: the runtime hands them in (`muscle_jax.runtime`).
    """

    num_targets: int
    channels: Sequence[int] = (16, 32, 64, 128)
    hidden: int = 256
    dropout: float = 0.0
    norm: str = "none"
    input_norm: str = "none"
    conv: Callable[..., nn.Module] = nn.Conv
    dtype: Any = None

    @nn.compact
    def __call__(self, images_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        layers.check_poolable(images_BxHxWxC.shape[1:3], len(self.channels), "convnet")
        x = normalize_input(images_BxHxWxC, self.input_norm)
        for stage, features in enumerate(self.channels):
            for i in range(2):
                x = self.conv(features, (3, 3), dtype=self.dtype, kernel_init=RELU_INIT, name=f"conv{stage}_{i}")(x)
                x = make_norm(self.norm, features)(x)
                x = nn.relu(x)
            x = layers.max_pool_2x2(x)
        x_BxC = x.mean(axis=(1, 2))
        x_BxC = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, kernel_init=RELU_INIT, name="hidden")(x_BxC))
        x_BxC = nn.Dropout(self.dropout, deterministic=not train)(x_BxC)
        return nn.Dense(self.num_targets, dtype=self.dtype, name="head")(x_BxC).astype("float32")
