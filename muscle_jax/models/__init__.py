"""Model registry: a family is one module file and one line in `FAMILIES`.

A family is a Flax module class. Its knobs are its fields with defaults, except what a run
supplies (`num_targets`) and what the runtime hands in (`conv`, the convolution module, and
`dtype`, the computation dtype; `muscle_jax.runtime`). So each family's own defaults are
its real defaults, and adding a knob to a family is adding a field.

`config.model` (made by `model_config`) holds `name` and every registered family's knobs as
typed placeholders: a config file or the command line sets only what it means to change
(`--config.model.name=resnet --config.model.blocks_per_stage=(2,2,2,2)`), and `family_knobs`
fills the rest from the chosen family's defaults. A set knob that the chosen family does not
have is an error naming the family and its knobs. A run records the resolved knobs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import ml_collections
from ml_collections import config_dict

from muscle_jax.models.convnet import ConvNet
from muscle_jax.models.resnet import ResNet

FAMILIES: dict[str, type[nn.Module]] = {"convnet": ConvNet, "resnet": ResNet}

# Fields of a family that are not knobs: the run's, the runtime's, and Flax's own.
SUPPLIED_FIELDS = ("num_targets", "conv", "dtype", "parent", "name")


def knob_defaults(family: type[nn.Module]) -> dict[str, Any]:
    """A family's knobs and their defaults."""
    return {
        field.name: field.default
        for field in dataclasses.fields(family)
        if field.name not in SUPPLIED_FIELDS and field.default is not dataclasses.MISSING
    }


def _knob_types() -> dict[str, type]:
    """The type of every knob of every registered family (a tuple for any sequence)."""
    types: dict[str, tuple[type, str]] = {}
    for family_name, family in FAMILIES.items():
        for knob, default in knob_defaults(family).items():
            kind = tuple if isinstance(default, (list, tuple)) else type(default)
            if knob in types and types[knob][0] is not kind:
                raise TypeError(f"model knob {knob!r} is a {types[knob][0].__name__} in {types[knob][1]!r} "
                                f"and a {kind.__name__} in {family_name!r}; one name, one type")
            types[knob] = (kind, family_name)
    return {knob: kind for knob, (kind, _) in types.items()}


def model_config(name: str = "convnet", **knobs: Any) -> ml_collections.ConfigDict:
    """`config.model`: the family `name` and the knobs given here; every other registered knob
    is an unset placeholder (its family's default applies)."""
    config = ml_collections.ConfigDict()
    config.name = name
    for knob, kind in sorted(_knob_types().items()):
        config[knob] = config_dict.placeholder(kind)
    for knob, value in knobs.items():
        if knob not in config:
            raise ValueError(f"model.{knob} is not a knob of any registered family ({sorted(FAMILIES)})")
        config[knob] = tuple(value) if isinstance(value, list) else value
    return config


def family_knobs(model: Mapping[str, Any]) -> dict[str, Any]:
    """`{'name': family, **knobs}`: the chosen family's defaults with the set fields of `model`
    (a `config.model` or a run's recorded knobs) over them."""
    name = model["name"]
    if name not in FAMILIES:
        raise ValueError(f"model.name {name!r} is not one of the registered families {sorted(FAMILIES)}")
    defaults = knob_defaults(FAMILIES[name])
    given = {knob: value for knob, value in dict(model).items() if knob != "name" and value is not None}
    foreign = sorted(set(given) - set(defaults))
    if foreign:
        owners = sorted(other for other, family in FAMILIES.items() if foreign[0] in knob_defaults(family))
        raise ValueError(
            f"model.{foreign[0]} is not a knob of {name!r}"
            + (f" (it is one of {', '.join(owners)})" if owners else "")
            + f"; {name}'s knobs: {', '.join(sorted(defaults))}"
        )
    given = {knob: tuple(value) if isinstance(value, list) else value for knob, value in given.items()}
    return {"name": name, **defaults, **given}


def create_model(model: Mapping[str, Any], num_targets: int, conv: Callable[..., nn.Module] = nn.Conv,
                 dtype: Any = None) -> nn.Module:
    """The family of `model` with its knobs (`family_knobs`), `num_targets` outputs, and the
    runtime's `conv` and computation `dtype`."""
    knobs = family_knobs(model)
    family = FAMILIES[knobs.pop("name")]
    return family(num_targets=num_targets, conv=conv, dtype=dtype, **knobs)
