"""Ultrasound-minded augmentation of (image, mask) pairs, in JAX so it runs inside the train step.

Geometry (applied identically to image and mask): a random window (training on windows of
the working-resolution frame costs less per step; the network is fully convolutional and
normalisation-free by default, so it runs unchanged on whole frames), horizontal flip (probe orientation is a
convention), zoom with a little aspect jitter and shift — a zoom > 1 is a crop, < 1 leaves
black margins like a scanner's border — and an optional small rotation (`max_rotation_deg`,
in working pixels; 0 when the config has no such field). Intensity (image only): gain, gamma (contrast) and
noise: multiplicative per-pixel speckle plus a little additive noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections


def _geometry_coordinates(
    key: jax.Array, hw: tuple[int, int], out_hw: tuple[int, int], config: ml_collections.ConfigDict
) -> jax.Array:
    """Source (row, column) per output pixel, 2×h×w, for one random crop/flip/zoom/shift.

    The output window (`out_hw`, at most `hw`) sits at a random place inside the source.
    """
    height, width = hw
    out_height, out_width = out_hw
    k_flip, k_scale, k_aspect, k_shift, k_place, k_rotate = jax.random.split(key, 6)
    low, high = config.scale_range
    log_scale = jax.random.uniform(k_scale, (), minval=jnp.log(low), maxval=jnp.log(high))
    log_aspect = jax.random.uniform(k_aspect, (), minval=-config.aspect_jitter, maxval=config.aspect_jitter)
    scale_rows, scale_cols = jnp.exp(log_scale + log_aspect), jnp.exp(log_scale - log_aspect)
    shift_rows, shift_cols = (
        jax.random.uniform(k_shift, (2,), minval=-config.max_shift_fraction, maxval=config.max_shift_fraction)
        * jnp.array([height, width])
    )
    place_rows, place_cols = jax.random.uniform(k_place, (2,)) * jnp.array([height - out_height, width - out_width])
    flip = jax.random.bernoulli(k_flip, config.flip_probability)
    rows, cols = jnp.meshgrid(
        jnp.arange(out_height, dtype=jnp.float32), jnp.arange(out_width, dtype=jnp.float32), indexing="ij"
    )
    centre_row, centre_col = (out_height - 1) / 2.0, (out_width - 1) / 2.0
    cols = jnp.where(flip, out_width - 1 - cols, cols)
    # Rotation about the window's centre (in working pixels): aponeuroses at other slopes.
    max_rotation = jnp.radians(config.get("max_rotation_deg", 0.0))
    angle = jax.random.uniform(k_rotate, (), minval=-max_rotation, maxval=max_rotation)
    rows, cols = (
        centre_row + jnp.cos(angle) * (rows - centre_row) - jnp.sin(angle) * (cols - centre_col),
        centre_col + jnp.sin(angle) * (rows - centre_row) + jnp.cos(angle) * (cols - centre_col),
    )
    source_rows = place_rows + centre_row + (rows - centre_row) / scale_rows + shift_rows
    source_cols = place_cols + centre_col + (cols - centre_col) / scale_cols + shift_cols
    return jnp.stack([source_rows, source_cols])


def _intensity(key: jax.Array, image_HxW: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
    k_gain, k_gamma, k_speckle_sigma, k_speckle, k_noise_sigma, k_noise = jax.random.split(key, 6)
    gain = jax.random.uniform(k_gain, (), minval=config.gain_range[0], maxval=config.gain_range[1])
    low, high = config.gamma_range
    gamma = jnp.exp(jax.random.uniform(k_gamma, (), minval=jnp.log(low), maxval=jnp.log(high)))
    image_HxW = jnp.clip(gain * image_HxW, 0.0, 1.0) ** gamma
    speckle_sigma = jax.random.uniform(k_speckle_sigma, (), maxval=config.speckle_sigma_max)
    image_HxW = image_HxW * (1.0 + speckle_sigma * jax.random.normal(k_speckle, image_HxW.shape))
    noise_sigma = jax.random.uniform(k_noise_sigma, (), maxval=config.noise_sigma_max)
    image_HxW = image_HxW + noise_sigma * jax.random.normal(k_noise, image_HxW.shape)
    return jnp.clip(image_HxW, 0.0, 1.0)


def augment_pair(
    key: jax.Array, image_HxW: jax.Array, mask_HxW: jax.Array, config: ml_collections.ConfigDict
) -> tuple[jax.Array, jax.Array]:
    """One random augmentation of a [0, 1] image and its [0, 1] mask (same H×W).

    Returns a `config.crop_hw` window ((0, 0) = the whole frame) of each.
    """
    k_geometry, k_intensity = jax.random.split(key)
    out_hw = tuple(config.crop_hw) if tuple(config.crop_hw) != (0, 0) else image_HxW.shape
    if out_hw[0] > image_HxW.shape[0] or out_hw[1] > image_HxW.shape[1]:
        raise ValueError(f"augment.crop_hw {out_hw} exceeds the working resolution {image_HxW.shape}")
    coordinates = _geometry_coordinates(k_geometry, image_HxW.shape, out_hw, config)
    warp = lambda a: jax.scipy.ndimage.map_coordinates(a, list(coordinates), order=1, mode="constant", cval=0.0)  # noqa: E731
    return _intensity(k_intensity, warp(image_HxW), config), warp(mask_HxW)


def augment_batch(
    key: jax.Array, images_BxHxW: jax.Array, masks_BxHxW: jax.Array, config: ml_collections.ConfigDict
) -> tuple[jax.Array, jax.Array]:
    """`augment_pair` with an independent key per example."""
    keys = jax.random.split(key, images_BxHxW.shape[0])
    return jax.vmap(lambda k, i, m: augment_pair(k, i, m, config))(keys, images_BxHxW, masks_BxHxW)
