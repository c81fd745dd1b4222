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
    assert len(list((tmp_path / "plots").glob("fold*.png"))) == 3
    assert {"dataset_s", "compile_s", "train_s", "eval_s"} <= set(results["timing"])
    # Training a person can watch: every step in metrics.jsonl and TensorBoard, and the loss curve.
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in steps] == list(range(1, 9))
    assert {"loss", "grad_norm", "learning_rate", "loss/fold0"} <= set(steps[0])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 0


def test_misspelled_override_is_an_error(tmp_path):
    result = _run_main(f"--workdir={tmp_path}", "--config.train.nmu_steps=3", timeout=120)
    assert result.returncode != 0
    assert "nmu_steps" in result.stderr


def test_a_knob_of_another_family_fails_in_one_line_before_any_work(tmp_path):
    result = _run_main(f"--workdir={tmp_path}", "--config.model.blocks_per_stage=(2,2,2,2)",
                       f"--config.dataset.data_dir={tmp_path / 'never_built'}", timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.blocks_per_stage is not a knob of 'convnet' (it is one of resnet)"), last
    assert "Traceback" not in result.stderr and not (tmp_path / "never_built").exists()
