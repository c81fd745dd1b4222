"""Placement of the fold-stacked train state and of batches on a ('fold', 'data') device mesh.

The fold axis (axis 0 of every leaf of the fold-stacked `TrainState`, and of every batch
array [K, B, ...]) is split over the mesh's 'fold' axis; the per-fold batch axis B over its
'data' axis. The jitted step (`train.make_fold_train_step`) needs no change: XLA partitions
it from the placement of its inputs, each device stepping its folds on its share of the batch
and the gradients summed over 'data'.

The same code runs on one device (a 1×1 mesh), on several local devices
(e.g. `XLA_FLAGS=--xla_force_host_platform_device_count=4` on a CPU), and on several hosts.
Multi-host: every host runs the same program and calls, before anything else touches jax,

    jax.distributed.initialize()  # or with coordinator_address=, num_processes=, process_id=

(on Cloud TPU and under SLURM/Open MPI the arguments are found automatically). `jax.devices()`
then lists every host's devices, `make_mesh` builds one global mesh, and each host passes its
own slice of the batch to `shard_batch`, which assembles the global array from the
hosts' local data (`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

FOLD_AXIS = "fold"
DATA_AXIS = "data"


def make_mesh(num_folds: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ('fold', 'data') mesh over `devices` (default: all devices of all hosts).

    The fold axis gets gcd(#devices, num_folds) devices so that the folds split evenly;
    the data axis gets the rest.
    """
    devices = list(jax.devices() if devices is None else devices)
    if num_folds < 1:
        raise ValueError(f"num_folds must be at least 1, got {num_folds}")
    fold_size = math.gcd(len(devices), num_folds)
    grid = np.asarray(devices, dtype=object).reshape(fold_size, len(devices) // fold_size)
    return Mesh(grid, (FOLD_AXIS, DATA_AXIS))


def fold_state_shardings(state: Any, mesh: Mesh) -> Any:
    """For each leaf of a fold-stacked pytree: split axis 0 (K) over 'fold', replicate the rest."""
    num_fold_devices = mesh.shape[FOLD_AXIS]

    def leaf_sharding(leaf):
        if np.ndim(leaf) == 0:
            return NamedSharding(mesh, PartitionSpec())
        if leaf.shape[0] % num_fold_devices:
            raise ValueError(
                f"a state leaf of shape {leaf.shape} has {leaf.shape[0]} folds on axis 0, which do not "
                f"split over the mesh's {num_fold_devices} fold devices"
            )
        return NamedSharding(mesh, PartitionSpec(FOLD_AXIS))

    return jax.tree_util.tree_map(leaf_sharding, state)


def shard_fold_state(state: Any, mesh: Mesh) -> Any:
    """The fold-stacked state placed on `mesh` (axis 0 over 'fold')."""
    return jax.device_put(state, fold_state_shardings(state, mesh))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """[K, B, ...] arrays: K over 'fold', B over 'data', the rest whole."""
    return NamedSharding(mesh, PartitionSpec(FOLD_AXIS, DATA_AXIS))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """A batch dict of [K, B, ...] arrays placed on `mesh`.

    On one host the arrays are the whole batch. With several hosts each passes the rows of
    the data axis that its devices hold (its slice of B, all K) and gets the global array.
    """
    sharding = batch_sharding(mesh)
    data_size = mesh.shape[DATA_AXIS]
    placed = {}
    for name, array_KxBx_ in batch.items():
        if np.ndim(array_KxBx_) < 2:
            raise ValueError(f"batch[{name!r}] must be [K, B, ...], got shape {np.shape(array_KxBx_)}")
        if jax.process_count() == 1:
            if array_KxBx_.shape[1] % data_size:
                raise ValueError(
                    f"batch[{name!r}] has {array_KxBx_.shape[1]} examples per fold, which do not split over "
                    f"the mesh's {data_size} data devices; make train.batch_size a multiple of {data_size}"
                )
            placed[name] = jax.device_put(array_KxBx_, sharding)
        else:
            placed[name] = jax.make_array_from_process_local_data(sharding, np.asarray(array_KxBx_))
    return placed
