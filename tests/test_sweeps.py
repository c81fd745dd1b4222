"""Sweeps: expansion, naming, validation against the config, and a real two-run sweep."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from muscle_jax import sweeps

REPO = Path(__file__).resolve().parents[1]


def test_product_and_zip_expand_axes():
    assert sweeps.product({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert sweeps.zipped({"a": [1, 2], "b": ["x", "y"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(ValueError, match="equal lengths"):
        sweeps.zipped({"a": [1, 2], "b": ["x"]})


@pytest.mark.parametrize("value", [(8, 16, 32), ("angle_deg",), ("angle_deg", "emg_v"), (32, 32)])
def test_tuple_flag_values_read_back_as_the_same_tuple(value):
    assert ast.literal_eval(sweeps.flag_value(value)) == value


def test_run_names_are_readable_and_safe():
    assert sweeps.run_name({}) == "baseline"
    assert sweeps.run_name({"model.channels": (8, 16)}) == "channels=8-16"
    assert sweeps.run_name({"model.dropout": 0.5, "dataset.targets": ("angle_deg",)}) == "dropout=0.5__targets=angle_deg"
    assert "/" not in sweeps.run_name({"dataset.data_dir": "a/b"})


def _write_sweep(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my_sweep.py"
    path.write_text(text)
    return path


def test_sweep_files_are_read_with_their_problems_named(tmp_path):
    path = _write_sweep(tmp_path, 'FIXED = {"train.num_steps": 4}\nRUNS = [{}, ("small", {"model.hidden": 8})]\n')
    sweep = sweeps.load_sweep(path)
    assert [run.name for run in sweep.runs] == ["baseline", "small"] and sweep.baseline == "baseline"
    assert sweep.runs[1].overrides == {"train.num_steps": 4, "model.hidden": 8}
    assert sweep.runs[1].flags() == ["--config.train.num_steps=4", "--config.model.hidden=8"]
    with pytest.raises(ValueError, match="my_sweep.py: runs \\['baseline'\\] appear more than once"):
        sweeps.load_sweep(_write_sweep(tmp_path, "RUNS = [{}, {}]\n"))
    with pytest.raises(ValueError, match="BASELINE 'x'"):
        sweeps.load_sweep(_write_sweep(tmp_path, "BASELINE = 'x'\nRUNS = [{}]\n"))
    with pytest.raises(ValueError, match="RUNS must be"):
        sweeps.load_sweep(_write_sweep(tmp_path, "RUNS = {}\n"))


def test_misspelled_fields_and_wrong_types_fail_before_any_run(tmp_path):
    base = sweeps.load_config(str(REPO / "configs" / "default.py"))
    typo = sweeps.load_sweep(_write_sweep(tmp_path, 'RUNS = [{"model.dropuot": 0.5}]\n'))
    with pytest.raises(ValueError, match="my_sweep.py: run 'dropuot=0.5': cannot set config field 'model.dropuot'"):
        sweeps.validate(typo, base)
    wrong_type = sweeps.load_sweep(_write_sweep(tmp_path, 'RUNS = [{"model.dropout": "high"}]\n'))
    with pytest.raises(ValueError, match="'model.dropout' to 'high'"):
        sweeps.validate(wrong_type, base)
    fine = sweeps.load_sweep(_write_sweep(tmp_path, 'RUNS = [{"model.dropout": 0.5, "dataset.roi_hw": (32, 32)}]\n'))
    sweeps.validate(fine, base)


def test_a_sweep_runs_skips_finished_runs_and_compares_with_the_baseline(tmp_path):
    path = _write_sweep(tmp_path, (
        f'FIXED = {{"dataset.data_dir": {str(tmp_path / "tfds")!r}, "eval.plots": False}}\n'
        'RUNS = [{}, {"model.hidden": 8}]\n'
    ))
    command = [sys.executable, "experiments/sweep.py", "--config=configs/smoke.py", f"--sweep={path}",
               f"--root={tmp_path / 'runs'}"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-4000:]
    directory = tmp_path / "runs" / "my_sweep"
    results_file = directory / "hidden=8" / "results.json"
    finished_at = results_file.stat().st_mtime_ns
    table = (directory / "sweep.md").read_text()
    assert "| baseline |" in table and "| hidden=8 |" in table and "ΔRMSE vs baseline" in table
    summary = table[table.index("#### Summary"):table.index("#### angle_deg")]
    hidden_summary = next(line for line in summary.splitlines() if line.startswith("| hidden=8 |"))
    assert hidden_summary.count("/3") == 3  # a paired ΔRMSE with its folds for each of the 3 targets
    csv_rows = (directory / "sweep.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 2 * 3  # header + 2 runs × 3 targets
    hidden_angle = next(r.split(",") for r in csv_rows if r.startswith("hidden=8,angle_deg"))
    header = csv_rows[0].split(",")
    assert hidden_angle[header.index("delta_rmse_vs_baseline")] != ""
    assert (directory / "sweep.png").stat().st_size > 0

    compared = subprocess.run([sys.executable, "experiments/compare_models.py", f"--workdir={directory / 'baseline'}"],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stderr[-2000:]
    mean_predictor_rows = [line for line in compared.stdout.splitlines() if "| mean predictor |" in line]
    assert len(mean_predictor_rows) == 3 and all(row.rstrip().endswith("/3 |") for row in mean_predictor_rows)

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("finished before, skipped") == 2
    assert results_file.stat().st_mtime_ns == finished_at

    # A directory of the same name that ran other settings is never taken for this run.
    (directory / "hidden=8" / "sweep_run.json").write_text(json.dumps({"config": "configs/smoke.py", "overrides": {}}))
    refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "holds a run with other settings" in refused.stdout + refused.stderr
