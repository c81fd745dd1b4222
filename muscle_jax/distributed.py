"""One job over several processes (several hosts, or several processes on one host).

Every process runs the same command; together they own the devices of one ('fold', 'data')
mesh (`sharding.make_mesh`), each process holding a block of it. Before anything touches a
device, each process joins the job (`initialize`):

- explicitly: `--coordinator_address=<host of process 0>:<port> --num_processes=N
  --process_id=i` on `python -m muscle_jax.main` (how the test suite runs two processes on
  127.0.0.1);
- under SLURM, with no flags: when the job step has more than one task (`srun` with
  `--ntasks` > 1), `jax.distributed.initialize()` reads the coordinator, the process count
  and this process's rank from SLURM's variables (docs/scaling.md has an `sbatch` example).

On CPUs the processes exchange data through gloo over TCP (`jax_cpu_collectives_implementation`);
on GPUs through NCCL. Each process reads only the training rows its devices hold
(`sharding.process_batch_rows`); orbax saves and restores the sharded state from all
processes, into one checkpoint directory they share; process 0 builds the dataset before the
others open it (`primary_first`); the reports (run.json, metrics, results, plots) are
written by process 0 alone (`is_primary`). The workdir and the dataset's directory must be
on a filesystem every process sees.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

# Tasks of the job step `srun` started (the batch script itself is a step of one task); the
# job's task count where a SLURM version does not set it.
SLURM_TASKS = ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")
T = TypeVar("T")


def slurm_num_tasks() -> int:
    """The number of tasks of the SLURM job step this process belongs to (0 outside SLURM)."""
    if "SLURM_JOB_ID" not in os.environ:
        return 0
    name = next((name for name in SLURM_TASKS if name in os.environ), None)
    if name is None:
        return 1
    try:
        return int(os.environ[name])
    except ValueError:
        raise ValueError(f"{name} is {os.environ[name]!r}, not a number of tasks") from None


def check_arguments(coordinator_address: str, num_processes: int, process_id: int) -> None:
    """A one-line error naming the flag when the explicit job description cannot work."""
    given = {"coordinator_address": bool(coordinator_address), "num_processes": num_processes > 0,
             "process_id": process_id >= 0}
    if any(given.values()) and not all(given.values()):
        missing = ", ".join(f"--{name}" for name, ok in given.items() if not ok)
        raise ValueError(f"a multi-process job needs --coordinator_address, --num_processes and --process_id; "
                         f"missing {missing}")
    if not any(given.values()):
        return
    host, _, port = coordinator_address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--coordinator_address must be <host>:<port>, got {coordinator_address!r}")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"--process_id must be in [0, --num_processes={num_processes}), got {process_id}")


def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> bool:
    """Joins a multi-process job when one is described (flags, or a SLURM step of several
    tasks); returns whether this process is part of one. Call before any device is used."""
    check_arguments(coordinator_address, num_processes, process_id)
    explicit = bool(coordinator_address)
    if not explicit and slurm_num_tasks() <= 1:
        return False
    if jax.distributed.is_initialized():
        return True
    # CPU processes exchange arrays through gloo (TCP); set before the CPU backend starts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if explicit:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    else:
        jax.distributed.initialize()  # SLURM's variables: coordinator, process count and rank
    logging.info("process %d of %d; %d local and %d global devices", jax.process_index(), jax.process_count(),
                 jax.local_device_count(), jax.device_count())
    return True


def is_primary() -> bool:
    """Whether this process writes the job's reports (process 0; the only one of a one-process job)."""
    return jax.process_index() == 0


def primary_first(make: Callable[[], T]) -> T:
    """`make()` in process 0, then in every other process once process 0 is done: for work
    whose result all of them share on disk, such as building the dataset, which several
    processes must not write at once."""
    if jax.process_count() == 1:
        return make()
    result = make() if is_primary() else None
    multihost_utils.sync_global_devices("muscle_jax: process 0 went first")
    return result if is_primary() else make()


def barrier(name: str) -> None:
    """Every process of a multi-process job waits here for the others (nothing with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def to_host(tree: Any) -> Any:
    """The values of a pytree of (possibly sharded over processes) arrays as numpy arrays, on
    every process: the parts other processes hold are gathered from them."""
    if jax.process_count() == 1:
        return jax.device_get(tree)

    def gather(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return multihost_utils.process_allgather(leaf, tiled=True)
        return np.asarray(leaf)

    return jax.tree.map(gather, tree)
