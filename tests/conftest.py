"""Shared test setup: strict shapes, one tiny phantom dataset and one trained run per session."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import os
import tempfile

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# Measured runtime choices of the suite's runs stay out of the user's cache.
os.environ.setdefault("MUSCLE_JAX_CACHE", tempfile.mkdtemp(prefix="muscle_jax_cache_"))
# Every training run in the suite compiles the same few programs; a persistent cache shared
# with the subprocesses (through the environment) compiles each of them once.
_COMPILE_CACHE = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="muscle_jax_xla_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", _COMPILE_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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


@pytest.fixture(scope="session")
def recordings_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run trained for two steps on a tiny `recordings` layout of synthetic videos (calibration
    crop 10,8,44,32 of 64×48 frames; angle, torque, EMG): (workdir, root of the layout's folder)."""
    from configs import smoke
    from muscle_jax import train
    from test_recordings import make_layout

    root = tmp_path_factory.mktemp("rec")
    layout = make_layout(root / "layout")
    config = smoke.get_config()
    config.dataset.builder_config = "recordings"
    config.dataset.manual_dir = str(layout)
    config.dataset.data_dir = str(root / "tfds")
    config.dataset.targets = ("angle_deg", "torque_nm", "emg_v")
    config.train.num_steps = 2
    config.eval.plots = False
    workdir = root / "run"
    train.train_and_evaluate(config, workdir)
    return workdir, root


# docs/reliability.md is written from a run of tests/test_reliability.py (its module docstring).
_RELIABILITY_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report):
    if report.when == "call" and "test_reliability.py" in report.nodeid:
        name = report.nodeid.split("::")[-1].split("[")[0]
        if _RELIABILITY_OUTCOMES.get(name) != "failed":
            _RELIABILITY_OUTCOMES[name] = report.outcome


def pytest_sessionfinish(session):
    target = os.environ.get("MUSCLE_JAX_RELIABILITY_DOC")
    if not target or not _RELIABILITY_OUTCOMES:
        return
    import test_reliability

    lines = [
        "# Reliability: every bad input and fault tried, and its outcome",
        "",
        "Each row is a test in `tests/test_reliability.py` that reproduces the fault and checks the outcome;",
        "this table is written from a run of those tests:",
        "",
        "```",
        "MUSCLE_JAX_RELIABILITY_DOC=docs/reliability.md python -m pytest -q tests/test_reliability.py",
        "```",
        "",
        "and `test_the_doc_lists_every_case` fails when a case is added or changed without rewriting it.",
        "",
        "| area | fault or bad input | outcome | test (result of the run that wrote this table) |",
        "| --- | --- | --- | --- |",
    ]
    for name, area, fault, outcome in test_reliability.CASES:
        lines.append(f"| {area} | {fault} | {outcome} | `{name}`: {_RELIABILITY_OUTCOMES.get(name, 'not run')} |")
    Path(target).write_text("\n".join(lines) + "\n")
