"""Where a sweep's runs execute: parallel processes here, or jobs on a SLURM cluster (submitit).

Each run is one `python -m muscle_jax.main` command (`experiments/sweep.py` builds it); a
submitit job runs it through `run_command`, its output appended to `<workdir>/log.txt`.

- 'local': submitit's `LocalExecutor`, each run a process of its own on this machine, at
  most `max_parallel` at once; the sweep waits for them.
- 'slurm': submitit's `SlurmExecutor`, all runs as one job array (`sbatch --array`, at most
  `max_parallel` running at once) with the partition, GPUs, CPUs, memory and time limit of
  `SlurmResources`; the sweep returns once they are queued, and `--collect` later writes the
  tables. A job that SLURM stops for its time limit resumes from its checkpoint when
  submitted again.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Sequence

import submitit

LAUNCHES = ("local", "slurm")
# SLURM states of a job that is still to run or running: such a run is not submitted again.
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")


@dataclasses.dataclass(frozen=True)
class SlurmResources:
    """What each run of a sweep asks SLURM for."""

    partition: str = ""
    gpus_per_run: int = 0
    cpus_per_run: int = 4
    mem_gb: int = 32
    time_min: int = 120
    setup: tuple[str, ...] = ()  # shell lines before the run, e.g. "source .venv/bin/activate"

    def check(self) -> None:
        """A one-line error naming the flag of a value SLURM cannot take."""
        for name in ("gpus_per_run", "cpus_per_run", "mem_gb", "time_min"):
            value = getattr(self, name)
            if value < (0 if name == "gpus_per_run" else 1):
                raise ValueError(f"--slurm_{name} must be {'>= 0' if name == 'gpus_per_run' else '>= 1'}, got {value}")


def run_command(command: Sequence[str], cwd: str, log_path: str) -> float:
    """Runs one sweep run's command with its output appended to `log_path`; returns the wall
    seconds; raises, naming the log, when the run fails."""
    start = time.perf_counter()
    with open(log_path, "a") as log:
        status = subprocess.run(list(command), cwd=cwd, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise RuntimeError(f"exit status {status}; see {log_path}")
    return time.perf_counter() - start


def make_executor(launch: str, folder: Path, job_name: str, max_parallel: int,
                  slurm: SlurmResources | None = None) -> submitit.Executor:
    """The submitit executor of `launch`, its job files (pickles, submitit's logs) in `folder`."""
    if launch not in LAUNCHES:
        raise ValueError(f"--launch must be one of {LAUNCHES} to go through submitit, got {launch!r}")
    if max_parallel < 1:
        raise ValueError(f"--max_parallel must be >= 1, got {max_parallel}")
    if launch == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=7 * 24 * 60)  # submitit's default would stop a run after 2 minutes
        return executor
    slurm = slurm or SlurmResources()
    slurm.check()
    executor = submitit.SlurmExecutor(folder=folder)
    parameters = dict(
        job_name=job_name, time=slurm.time_min, cpus_per_task=slurm.cpus_per_run, mem=f"{slurm.mem_gb}GB",
        ntasks_per_node=1, array_parallelism=max_parallel, setup=list(slurm.setup),
    )
    if slurm.partition:
        parameters["partition"] = slurm.partition
    if slurm.gpus_per_run:
        parameters["gpus_per_node"] = slurm.gpus_per_run
    executor.update_parameters(**parameters)
    return executor


def submit_runs(executor: submitit.Executor, commands: Sequence[Sequence[str]], cwd: Path,
                logs: Sequence[Path]) -> list[submitit.Job]:
    """One job per command, submitted together (on SLURM, one job array)."""
    with executor.batch():
        jobs = [executor.submit(run_command, list(command), str(cwd), str(log)) for command, log in zip(commands, logs)]
    return jobs


def run_locally(executor: submitit.Executor, commands: Sequence[Sequence[str]], cwd: Path, logs: Sequence[Path],
                max_parallel: int, on_done) -> list[str]:
    """Runs the commands as local submitit jobs, at most `max_parallel` at once; calls
    `on_done(i, seconds)` as each finishes; returns the failures, one line each."""
    pending = list(range(len(commands)))
    running: dict[int, submitit.Job] = {}
    failures = []
    while pending or running:
        while pending and len(running) < max_parallel:
            i = pending.pop(0)
            running[i] = executor.submit(run_command, list(commands[i]), str(cwd), str(logs[i]))
        time.sleep(0.5)
        for i, job in list(running.items()):
            if not job.done():
                continue
            del running[i]
            error = job.exception()
            if error is None:
                on_done(i, job.result())
            else:
                failures.append(f"{logs[i].parent.name}: {' '.join(str(error).split())[-300:]}")
    return failures


def job_is_active(folder: Path, job_id: str) -> bool:
    """Whether a SLURM job submitted earlier (by id) is still queued or running."""
    return submitit.SlurmJob(folder=folder, job_id=job_id).state in ACTIVE_STATES
