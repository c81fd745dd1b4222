"""Shared test setup: strict shapes, one tiny phantom dataset and one trained run per session."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@dataclasses.dataclass(frozen=True)
class SmokeDataset:
    """The phantom_smoke dataset built once; `config()` gives a fresh smoke config pointing at it."""

    data_dir: str
    source: Any
    info: Any

    def config(self):
        from configs import smoke

        config = smoke.get_config()
        config.dataset.data_dir = self.data_dir
        config.eval.plots = False
        return config


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory) -> SmokeDataset:
    from muscle_jax.data import pipeline

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    from configs import smoke

    config = smoke.get_config()
    config.dataset.data_dir = data_dir
    source, info = pipeline.load_source(config.dataset)
    return SmokeDataset(data_dir, source, info)


@pytest.fixture(scope="session")
def smoke_run(smoke_dataset, tmp_path_factory) -> Path:
    """A workdir holding a finished smoke-config run (read-only for tests)."""
    from muscle_jax import train

    workdir = tmp_path_factory.mktemp("smoke_run")
    train.train_and_evaluate_on(smoke_dataset.config(), workdir, smoke_dataset.source, smoke_dataset.info)
    return workdir
