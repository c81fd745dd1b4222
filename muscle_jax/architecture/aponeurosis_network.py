"""The segmentation U-Net's aponeurosis probabilities for image regions of any sizes, compiled once.

`segmentation.network.probabilities_BxHxW` resizes inside its jitted function, so every new
frame size compiles the network again. Image regions found in screen captures differ in size
from one capture format (and one steered image) to the next, so here the same resizes
(`jax.image.resize`, linear, antialiased; separable, hence one matrix per axis) are applied
on the host, and the network itself always runs at its working
resolution: one compilation per process, whatever the inputs. Each output pixel of a
resize reads only the few input pixels under its kernel, so a resize costs a handful of
multiply-adds per pixel. `tests/test_architecture.py`
checks that the probabilities equal `probabilities_BxHxW`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from muscle_jax.models.unet import UNet
from muscle_jax.segmentation.inference import cached_model


@functools.lru_cache(maxsize=64)
def resize_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """`jax.image.resize(..., 'linear', antialias=True)` along one axis as (first input index,
    weights) per output pixel: a triangle kernel centred on each output pixel's position in
    the input, widened by the shrink factor when shrinking, normalised to sum to 1. Returns
    `first_O` (int) and `weights_OxK`: output o = Σ_k weights[o, k] · input[first[o] + k]."""
    inverse_scale = size_in / size_out
    kernel_scale = max(inverse_scale, 1.0)
    centres_O = (np.arange(size_out, dtype=np.float64) + 0.5) * inverse_scale - 0.5
    taps = int(np.ceil(2 * kernel_scale)) + 1
    first_O = np.clip(np.floor(centres_O - kernel_scale).astype(np.int64) + 1, 0, max(0, size_in - taps))
    indices_OxK = first_O[:, None] + np.arange(taps)[None, :]
    weights_OxK = np.maximum(0.0, 1.0 - np.abs(centres_O[:, None] - indices_OxK) / kernel_scale)
    weights_OxK[indices_OxK >= size_in] = 0.0
    return first_O, (weights_OxK / weights_OxK.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """The same resize as a dense (size_out × size_in) matrix."""
    first_O, weights_OxK = resize_taps(size_in, size_out)
    matrix = np.zeros((size_out, size_in), np.float32)
    rows = np.repeat(np.arange(size_out), weights_OxK.shape[1])
    columns = (first_O[:, None] + np.arange(weights_OxK.shape[1])).ravel()
    valid = columns < size_in
    np.add.at(matrix, (rows[valid], columns[valid]), weights_OxK.ravel()[valid])
    return matrix


def _resize_axis0(image: np.ndarray, size_out: int) -> np.ndarray:
    first_O, weights_OxK = resize_taps(image.shape[0], size_out)
    out = np.zeros((size_out, *image.shape[1:]), np.float32)
    for k in range(weights_OxK.shape[1]):
        rows = np.minimum(first_O + k, image.shape[0] - 1)
        out += weights_OxK[:, k, None] * image[rows]
    return out


@functools.lru_cache(maxsize=4)
def _network(model: UNet):
    return jax.jit(lambda params, images_BxHxWx1: jax.nn.sigmoid(model.apply(params, images_BxHxWx1)[..., 0]))


def resize_HxW(image_HxW: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """`image` (float) resized to `hw` as `segmentation.network.resize_BxHxW` resizes it
    (each output pixel reads only the few input pixels under its kernel)."""
    if image_HxW.shape[1] != hw[1]:
        image_HxW = _resize_axis0(image_HxW.T, hw[1]).T
    if image_HxW.shape[0] != hw[0]:
        image_HxW = _resize_axis0(image_HxW, hw[0])
    return np.ascontiguousarray(image_HxW, np.float32)


def probabilities(images: Sequence[np.ndarray], checkpoint: str, batch_size: int = 16,
                  sizes: Sequence[tuple[int, int]] | None = None) -> list[np.ndarray]:
    """The aponeurosis probability of every pixel of each uint8 grey image (any sizes), float32,
    at the image's own size or at `sizes[i]` (the network's output resized straight to it)."""
    if not images:
        return []
    sizes = sizes or [image.shape for image in images]
    model, params, input_hw, _ = cached_model(checkpoint)
    network = _network(model)
    inputs_NxHxW = np.stack([resize_HxW(image.astype(np.float32) / 255.0, input_hw) for image in images])
    working = _in_batches(network, params, inputs_NxHxW.astype(np.float32), batch_size)
    return [np.clip(resize_HxW(p, tuple(size)), 0.0, 1.0).astype(np.float32) for p, size in zip(working, sizes, strict=True)]


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
