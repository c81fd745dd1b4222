"""The segmentation U-Net's aponeurosis probabilities for image regions of any sizes, compiled once.

`segmentation.network.probabilities_BxHxW` resizes inside its jitted function, so every new
frame size compiles the network again. Image regions found in screen captures differ in size
from one capture format (and one steered image) to the next, so here the same resizes
(`jax.image.resize`, linear, antialiased; separable, hence one matrix per axis) are applied
on the host as matrix products, and the network itself always runs at its working
resolution: one compilation per process, whatever the inputs. `tests/test_architecture.py`
checks that the probabilities equal `probabilities_BxHxW`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from muscle_jax.models.unet import UNet
from muscle_jax.segmentation.inference import cached_model


@functools.lru_cache(maxsize=64)
def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """The (size_out × size_in) matrix of `jax.image.resize(..., 'linear', antialias=True)`
    along one axis: a triangle kernel centred on each output pixel's position in the input,
    widened by the shrink factor when shrinking, each row normalised to sum to 1."""
    if size_in == size_out:
        return np.eye(size_in, dtype=np.float32)
    inverse_scale = size_in / size_out
    kernel_scale = max(inverse_scale, 1.0)
    centres_out = (np.arange(size_out, dtype=np.float64) + 0.5) * inverse_scale - 0.5
    distance = np.abs(centres_out[:, None] - np.arange(size_in, dtype=np.float64)[None, :]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - distance)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _network(model: UNet):
    return jax.jit(lambda params, images_BxHxWx1: jax.nn.sigmoid(model.apply(params, images_BxHxWx1)[..., 0]))


def resize_HxW(image_HxW: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """`image` (float) resized to `hw` exactly as `segmentation.network.resize_BxHxW` resizes it."""
    return resize_matrix(image_HxW.shape[0], hw[0]) @ image_HxW @ resize_matrix(image_HxW.shape[1], hw[1]).T


def probabilities(images: Sequence[np.ndarray], checkpoint: str, batch_size: int = 16) -> list[np.ndarray]:
    """The aponeurosis probability of every pixel of each uint8 grey image (any sizes), float32."""
    if not images:
        return []
    model, params, input_hw, _ = cached_model(checkpoint)
    network = _network(model)
    inputs_NxHxW = np.stack([resize_HxW(image.astype(np.float32) / 255.0, input_hw) for image in images])
    working = _in_batches(network, params, inputs_NxHxW.astype(np.float32), batch_size)
    return [np.clip(resize_HxW(p, image.shape), 0.0, 1.0).astype(np.float32) for p, image in zip(working, images, strict=True)]


def _in_batches(network: Any, params: Any, inputs_NxHxW: np.ndarray, batch_size: int) -> np.ndarray:
    """The network over batches of `batch_size` (fewer inputs: the next power of two), the
    last one padded, so it compiles for a handful of batch sizes at most."""
    count = len(inputs_NxHxW)
    batch_size = max(1, min(batch_size, 1 << (count - 1).bit_length()))
    out = np.empty(inputs_NxHxW.shape, np.float32)
    for start in range(0, count, batch_size):
        batch = inputs_NxHxW[start : start + batch_size]
        padded = np.concatenate([batch, np.zeros((batch_size - len(batch), *batch.shape[1:]), np.float32)])
        out[start : start + len(batch)] = np.asarray(network(params, padded[..., None]))[: len(batch)]
    return out
