"""Training-time augmentation of ROI images, on device, inside the jitted step.

What a held-out participant brings that the training participants did not: another overall
gain and contrast (scanner settings, echogenicity) and another position of the tissue along
the probe. The augmentations imitate exactly those. There is deliberately no horizontal flip:
it would reverse the direction in which the fascicles run, which the states depend on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections


def augment_images(key: jax.Array, images_BxHxWxC: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
    """Random horizontal shift (edges repeated), gamma, gain and offset, independently per image.

    `images_BxHxWxC` are in [0, 1]; so is the result. `config` has `max_shift_px`,
    `gamma` (low, high), `gain` (low, high) and `offset` (± max).
    """
    batch, _, width, _ = images_BxHxWxC.shape
    shift_key, gamma_key, gain_key, offset_key = jax.random.split(key, 4)
    pad = int(config.max_shift_px)
    if pad > 0:
        padded = jnp.pad(images_BxHxWxC, ((0, 0), (0, 0), (pad, pad), (0, 0)), mode="edge")
        starts_B = jax.random.randint(shift_key, (batch,), 0, 2 * pad + 1)
        images_BxHxWxC = jax.vmap(lambda image, start: jax.lax.dynamic_slice_in_dim(image, start, width, axis=1))(
            padded, starts_B
        )

    def per_image(low_high, key):
        low, high = low_high
        return jax.random.uniform(key, (batch, 1, 1, 1), minval=low, maxval=high)

    gamma = jnp.exp(per_image((jnp.log(config.gamma[0]), jnp.log(config.gamma[1])), gamma_key))
    gain = per_image(config.gain, gain_key)
    offset = per_image((-config.offset, config.offset), offset_key)
    images_BxHxWxC = jnp.power(jnp.clip(images_BxHxWxC, 1e-6, 1.0), gamma) * gain + offset
    return jnp.clip(images_BxHxWxC, 0.0, 1.0)
