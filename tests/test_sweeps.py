"""Sweeps: expansion, naming, validation against the config, and a real two-run sweep."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from submitit.core import utils as submitit_utils
from submitit.slurm.test_slurm import mocked_slurm  # submitit's own stand-in for sbatch and sacct

from muscle_jax import sweep_launch, sweeps

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


def test_a_sweep_runs_in_parallel_skips_finished_runs_and_compares_with_the_baseline(tmp_path):
    path = _write_sweep(tmp_path, (
        f'FIXED = {{"dataset.data_dir": {str(tmp_path / "tfds")!r}, "eval.plots": False}}\n'
        'RUNS = [{}, {"model.hidden": 8}]\n'
    ))
    command = [sys.executable, "experiments/sweep.py", "--config=configs/smoke.py", f"--sweep={path}",
               f"--root={tmp_path / 'runs'}", "--launch=local", "--max_parallel=2"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-4000:]
    assert first.stdout.count("built before the runs start") == 1  # one dataset, built once, before both runs
    directory = tmp_path / "runs" / "my_sweep"
    results_file = directory / "hidden=8" / "results.json"
    finished_at = results_file.stat().st_mtime_ns
    # Both runs went through submitit's local executor at once: their processes overlapped in time.
    spans = [_run_span(directory / name) for name in ("baseline", "hidden=8")]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans
    assert len(list((directory / "submitit").glob("*_result.pkl"))) == 2
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

    (directory / "sweep.md").unlink()
    collected = subprocess.run(command + ["--collect"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0 and "skipped" not in collected.stdout, collected.stderr[-2000:]
    assert (directory / "sweep.md").read_text() == table

    # A directory of the same name that ran other settings is never taken for this run.
    (directory / "hidden=8" / "sweep_run.json").write_text(json.dumps({"config": "configs/smoke.py", "overrides": {}}))
    refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "holds a run with other settings" in refused.stderr


def _run_span(workdir: Path) -> tuple[float, float]:
    """(start, end) of a finished run, from its own files: run.json is written before training,
    results.json after evaluation."""
    return (workdir / "run.json").stat().st_mtime, (workdir / "results.json").stat().st_mtime


def _sweep_module():
    spec = importlib.util.spec_from_file_location("sweep_cli", REPO / "experiments" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_slurm_sweep_is_one_job_array_with_the_resources_asked_and_is_not_submitted_twice(tmp_path):
    sweep_cli = _sweep_module()
    sweep = sweeps.load_sweep(_write_sweep(tmp_path, 'RUNS = [{}, {"model.hidden": 8}]\n'))
    directory = tmp_path / "runs" / sweep.name
    resources = sweep_launch.SlurmResources(partition="gpu", gpus_per_run=1, cpus_per_run=8, mem_gb=64,
                                            time_min=90, setup=("source .venv/bin/activate",))
    with mocked_slurm() as cluster:
        runs = sweep_cli.runs_to_launch(sweep, directory, "configs/default.py", "slurm")
        jobs = sweep_cli.launch_slurm(runs, directory, "configs/default.py", 2, resources)
        assert len(jobs) == 2 and len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array
        sbatch = jobs[0].paths.submission_file.read_text()
        for line in ("#SBATCH --array=0-1%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1",
                     "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --time=90",
                     "#SBATCH --job-name=my_sweep", "source .venv/bin/activate"):
            assert line in sbatch.splitlines(), line
        # What each array task will run: the run's own main command, its log in its workdir.
        submitted = submitit_utils.DelayedSubmission.load(jobs[1].paths.submitted_pickle)
        run_command, cwd, log = submitted.args
        assert submitted.function is sweep_launch.run_command and cwd == str(REPO)
        assert run_command[1:] == ["-m", "muscle_jax.main", "--config=configs/default.py",
                                   f"--workdir={directory / 'hidden=8'}", "--config.model.hidden=8"]
        assert log == str(directory / "hidden=8" / "log.txt")
        assert json.loads((directory / "hidden=8" / "sweep_run.json").read_text())["slurm_job"] == jobs[1].job_id

        # Queued or running jobs are not submitted again; a failed one is.
        assert sweep_cli.runs_to_launch(sweep, directory, "configs/default.py", "slurm") == []
        cluster.set_job_state(jobs[0].job_id.split("_")[0], "FAILED", array=2)
        assert [run.name for run in sweep_cli.runs_to_launch(sweep, directory, "configs/default.py", "slurm")] == [
            "baseline", "hidden=8"]

    with pytest.raises(ValueError, match="--slurm_time_min must be >= 1, got 0"):
        sweep_launch.SlurmResources(time_min=0).check()
