"""The segmentation network, its input convention and its single-file checkpoint.

Input convention: a uint8 frame is resized (bilinear, antialiased) to the working
resolution `input_hw` and scaled to [0, 1]; the network's sigmoid probabilities are resized
back to the frame's size. Training data go through the same `resize_BxHxW`, so the
network sees at training time exactly what it sees at inference.

Checkpoint: one msgpack file (flax.serialization) holding the parameters, the model and
input knobs it was built with, and the validation metrics it reached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from muscle_jax.models.unet import UNet

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "pretrained" / "unet_aponeurosis.msgpack"


# Checkpoints written before the runtime split recorded which convolution formulation trained
# them; every formulation has the same parameters, so the key says nothing about the model.
_FORMULATION_KEY_OF_OLD_CHECKPOINTS = "conv_impl"


def build_unet(model_knobs: dict[str, Any]) -> UNet:
    """A one-logit `UNet` from the `config.model` knobs (features, depth, norm_groups)."""
    knobs = {k: v for k, v in model_knobs.items() if k != _FORMULATION_KEY_OF_OLD_CHECKPOINTS}
    unknown = set(knobs) - {"features", "depth", "norm_groups"}
    if unknown:
        raise ValueError(f"model.{sorted(unknown)[0]} is not a knob of the segmentation UNet")
    return UNet(out_channels=1, **knobs)


def resize_BxHxW(images_BxHxW: jax.Array, hw: tuple[int, int]) -> jax.Array:
    """Bilinear resize of float images to `hw`, antialiased when shrinking."""
    return jax.image.resize(images_BxHxW, (images_BxHxW.shape[0], *hw), method="linear", antialias=True)


def network_input_BxHxWx1(frames_BxHxW: jax.Array, input_hw: tuple[int, int]) -> jax.Array:
    """uint8 (or [0, 255] float) frames of any size → [0, 1] float32 at the working resolution."""
    resized = resize_BxHxW(frames_BxHxW.astype(jnp.float32) / 255.0, input_hw)
    return resized[..., None]


def probabilities_BxHxW(model: UNet, params: Any, frames_BxHxW: jax.Array, input_hw: tuple[int, int]) -> jax.Array:
    """Aponeurosis probability per pixel of each frame, at the frames' own size."""
    logits_BxhxWx1 = model.apply(params, network_input_BxHxWx1(frames_BxHxW, input_hw))
    probabilities = jax.nn.sigmoid(logits_BxhxWx1[..., 0])
    return jnp.clip(resize_BxHxW(probabilities, frames_BxHxW.shape[1:3]), 0.0, 1.0)


def save_checkpoint(path: str | Path, params: Any, model_knobs: dict, input_hw: tuple[int, int], metrics: dict) -> None:
    """Writes parameters (float32) and the knobs needed to rebuild the model to one file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"model": dict(model_knobs), "input_hw": list(input_hw), "metrics": metrics}
    payload = {"params": jax.tree.map(lambda a: np.asarray(a, np.float32), params), "meta": json.dumps(meta)}
    path.write_bytes(flax.serialization.msgpack_serialize(payload))


def load_checkpoint(path: str | Path) -> tuple[UNet, Any, tuple[int, int], dict]:
    """(model, params, input_hw, meta) from a file written by `save_checkpoint`."""
    path = Path(path)
    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        meta = json.loads(payload["meta"])
        params = payload["params"]
        input_hw = tuple(int(v) for v in meta["input_hw"])
        model = build_unet(meta["model"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a segmentation checkpoint written by save_checkpoint ({error!r})") from error
    return model, params, input_hw, meta


_probabilities_jit = jax.jit(probabilities_BxHxW, static_argnums=(0, 3))


def predict_probabilities_NxHxW(
    model: UNet, params: Any, input_hw: tuple[int, int], frames_NxHxW: np.ndarray, batch_size: int
) -> np.ndarray:
    """`probabilities_BxHxW` over same-size frames in batches (the last one padded, so one compile)."""
    if frames_NxHxW.ndim != 3:
        raise ValueError(f"expected frames N×H×W, got shape {frames_NxHxW.shape}")
    count = frames_NxHxW.shape[0]
    batch_size = max(1, min(batch_size, count))
    out = np.empty(frames_NxHxW.shape, np.float32)
    for start in range(0, count, batch_size):
        batch = frames_NxHxW[start : start + batch_size]
        padded = np.concatenate([batch, np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)])
        out[start : start + len(batch)] = np.asarray(_probabilities_jit(model, params, padded, tuple(input_hw)))[: len(batch)]
    return out
