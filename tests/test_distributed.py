"""One job over two processes (2 × 2 CPU devices, gloo over 127.0.0.1): the numbers of one
process to the last digit, and a resume after both processes are killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from muscle_jax import distributed

REPO = Path(__file__).resolve().parents[1]
NUM_STEPS = 16


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _main(workdir: Path, data_dir: str, devices: int, *extra: str) -> subprocess.Popen:
    # Trial folds: 4 of them, so that on 2 × 2 devices each process holds 2 whole folds
    # (mesh fold 4 × data 1) and a process stepping another's folds changes their numbers.
    command = [
        sys.executable, "-m", "muscle_jax.main", "--config=configs/smoke.py", f"--workdir={workdir}",
        f"--config.dataset.data_dir={data_dir}", "--config.eval.plots=False", "--config.folds.group_by=trial",
        "--config.folds.num_folds=4", f"--config.train.num_steps={NUM_STEPS}", *extra,
    ]
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _two_processes(workdir: Path, data_dir: str) -> list[subprocess.Popen]:
    address = f"127.0.0.1:{_free_port()}"
    return [_main(workdir, data_dir, 2, f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}")
            for i in range(2)]


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-4000:]
    return stdout, stderr


def _per_fold(results: dict) -> dict:
    return {(model, target, metric): stat["per_fold"] for model, by_target in results["models"].items()
            for target, by_metric in by_target.items() for metric, stat in by_metric.items()}


def test_two_processes_equal_one_and_resume_after_both_are_killed(smoke_dataset, tmp_path):
    reference = _main(tmp_path / "one", smoke_dataset.data_dir, 4)  # one process, the same 4-device mesh
    # The two processes find no dataset: process 0 builds it while process 1 waits, then both read it.
    data_dir = str(tmp_path / "tfds")
    first = _two_processes(tmp_path / "two", data_dir)
    committed = tmp_path / "two" / "checkpoints" / "2" / "commit_success.txt"
    deadline = time.monotonic() + 600
    while not committed.exists() and all(p.poll() is None for p in first) and time.monotonic() < deadline:
        time.sleep(0.02)
    for process in first:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert committed.exists(), "the two processes never saved their first checkpoint"
    assert not (tmp_path / "two" / "results.json").exists(), "both processes finished before they were killed"

    second = _two_processes(tmp_path / "two", data_dir)
    (stdout0, log0), (stdout1, log1) = _finish(second[0]), _finish(second[1])
    _finish(reference)
    for process_id, log in enumerate((log0, log1)):
        assert f"process {process_id} of 2; 2 local and 4 global devices" in log
        assert "4 folds on a cpu device mesh {'fold': 4, 'data': 1}" in log
        resumed_at = int(log.split("resumed from the checkpoint at step ")[1].split()[0])
        assert 2 <= resumed_at < NUM_STEPS
    assert "| angle_deg (°) | CNN |" in stdout0 and "| CNN |" not in stdout1  # process 0 alone reports

    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["folds"] == one["folds"]
    assert _per_fold(two) == _per_fold(one)  # every fold's every metric, to the last digit
    steps_one = (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    steps_two = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(steps_two) == NUM_STEPS and steps_two == steps_one  # each step once, each fold's loss equal


def test_a_half_described_job_is_refused_naming_the_missing_flags(monkeypatch):
    with pytest.raises(ValueError, match="missing --num_processes, --process_id"):
        distributed.check_arguments("127.0.0.1:1234", 0, -1)
    with pytest.raises(ValueError, match="<host>:<port>"):
        distributed.check_arguments("127.0.0.1", 2, 0)
    with pytest.raises(ValueError, match=r"--process_id must be in \[0, --num_processes=2\)"):
        distributed.check_arguments("127.0.0.1:1234", 2, 2)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert distributed.initialize() is False  # no job described, not under SLURM: one process


def test_a_slurm_step_of_several_tasks_is_a_multi_process_job_and_one_task_is_not(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.slurm_num_tasks() == 0
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert distributed.slurm_num_tasks() == 8
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # the batch script itself, not an `srun` step
    assert distributed.slurm_num_tasks() == 1 and distributed.initialize() is False
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "eight")
    with pytest.raises(ValueError, match="SLURM_STEP_NUM_TASKS is 'eight'"):
        distributed.slurm_num_tasks()
