"""Shared test setup: strict shapes, and one tiny phantom dataset built once per session."""

from __future__ import annotations

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def smoke_config_factory():
    """Returns fresh copies of configs/smoke.py pointed at a session-wide data dir."""
    from configs import smoke

    return smoke.get_config


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory, smoke_config_factory):
    """(config, source, info) of the phantom_smoke dataset, built once into a temporary data dir."""
    from muscle_jax.data import pipeline

    config = smoke_config_factory()
    config.dataset.data_dir = str(tmp_path_factory.mktemp("tfds"))
    source, info = pipeline.load_source(config.dataset)
    return config, source, info
