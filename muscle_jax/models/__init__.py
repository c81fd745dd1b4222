"""Model registry: `config.model.name` → a Flax module built from the config's knobs."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from muscle_jax.models.convnet import ConvNet
from muscle_jax.models.resnet import ResNet

MODELS = {"convnet": ConvNet, "resnet": ResNet}

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def create_model(model_config: ml_collections.ConfigDict, num_targets: int) -> nn.Module:
    """Instantiates `MODELS[model_config.name]` with every other field of `model_config` as a knob."""
    knobs = model_config.to_dict()
    name = knobs.pop("name")
    if name not in MODELS:
        raise ValueError(f"model.name {name!r} is not one of {sorted(MODELS)}")
    dtype_name = knobs.pop("dtype", "float32")
    if dtype_name not in _DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(_DTYPES)}, got {dtype_name!r}")
    family = MODELS[name]
    unknown = set(knobs) - set(family.__dataclass_fields__)
    if unknown:
        raise ValueError(f"model.{sorted(unknown)[0]} is not a knob of {name!r}")
    return family(num_targets=num_targets, dtype=_DTYPES[dtype_name], **knobs)
