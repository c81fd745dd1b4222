"""The entry point end to end on the smoke config, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_main(*args, timeout=300, env=None):
    return subprocess.run(
        [sys.executable, "-m", "muscle_jax.main", "--config=configs/smoke.py", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def test_main_trains_evaluates_and_reports_on_a_four_device_mesh(smoke_dataset, tmp_path):
    # The in-process tests run on one device; this run splits each fold's batch over 4 host devices.
    result = _run_main(f"--workdir={tmp_path}", f"--config.dataset.data_dir={smoke_dataset.data_dir}",
                       env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'fold': 1, 'data': 4" in result.stderr
    assert "step 8/8" in result.stderr and "examples/s" in result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["models"]) == {"cnn", "mean_predictor", "ridge_architecture"}
    for model in results["models"].values():
        for target in ("angle_deg", "torque_nm", "emg_v"):
            assert len(model[target]["rmse"]["per_fold"]) == len(results["folds"]) == 3
    assert {f["held_out"][0] for f in results["folds"]} == {0, 1, 2}
    assert "| angle_deg (°) | CNN |" in (tmp_path / "results.md").read_text()
    assert len(list((tmp_path / "plots").glob("*.png"))) == 3
    assert {"dataset_s", "compile_s", "train_s", "eval_s"} <= set(results["timing"])


def test_misspelled_override_is_an_error(tmp_path):
    result = _run_main(f"--workdir={tmp_path}", "--config.train.nmu_steps=3", timeout=120)
    assert result.returncode != 0
    assert "nmu_steps" in result.stderr
