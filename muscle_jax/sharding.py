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

(on Cloud TPU and under SLURM/Open MPI the arguments are found automatically;
`muscle_jax.distributed` does this for `python -m muscle_jax.main`). `jax.devices()` then
lists every host's devices, `make_mesh` builds one global mesh with each process's devices
side by side, each process reads only the block of a batch its devices hold
(`process_batch_rows`) and passes it to `shard_batch`, which assembles the global array from
the processes' blocks (`jax.make_array_from_process_local_data`).
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
    # Each process's devices side by side, so that a process holds one block of the mesh.
    devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
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
    """The fold-stacked state placed on `mesh` (axis 0 over 'fold').

    With several processes, every process holds the same whole state (initialisation is a
    pure function of the seed) and keeps the blocks its own devices hold.
    """
    shardings = fold_state_shardings(state, mesh)
    if jax.process_count() == 1:
        return jax.device_put(state, shardings)
    return jax.tree.map(
        lambda leaf, where: jax.make_array_from_callback(np.shape(leaf), where, lambda index: np.asarray(leaf[index])),
        state, shardings,
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """[K, B, ...] arrays: K over 'fold', B over 'data', the rest whole."""
    return NamedSharding(mesh, PartitionSpec(FOLD_AXIS, DATA_AXIS))


def process_batch_rows(mesh: Mesh, num_folds: int, batch_size: int) -> tuple[slice, slice]:
    """The block (folds, examples) of a [K, B, ...] batch that this process's devices hold:
    all of it with one process; with several, the rows it must read (and no others)."""
    indices = batch_sharding(mesh).addressable_devices_indices_map((num_folds, batch_size))
    block = []
    for axis, size in enumerate((num_folds, batch_size)):
        ranges = {index[axis].indices(size)[:2] for index in indices.values()}
        start, stop = min(r[0] for r in ranges), max(r[1] for r in ranges)
        if sum(b - a for a, b in ranges) != stop - start:  # make_mesh keeps a process's devices together
            raise ValueError(f"this process's devices hold a non-contiguous part of batch axis {axis}: {sorted(ranges)}")
        block.append(slice(start, stop))
    return block[0], block[1]


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh, global_KxB: tuple[int, int] | None = None
                ) -> dict[str, jax.Array]:
    """A batch dict of [K, B, ...] arrays placed on `mesh`.

    With one process the arrays are the whole batch. With several, each passes the block its
    devices hold (`process_batch_rows`) and the whole batch's (K, B) as `global_KxB`, and
    gets the global array.
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
            if global_KxB is None:
                raise ValueError("with several processes, shard_batch needs the whole batch's (K, B) as global_KxB")
            placed[name] = jax.make_array_from_process_local_data(
                sharding, np.asarray(array_KxBx_), (*global_KxB, *np.shape(array_KxBx_)[2:]))
    return placed
