"""A thin layer over orbax's CheckpointManager for the fold-stacked train state, with digests.

Only the state's arrays are saved (params, optimiser state, step); the input position needs
no saving because batches are a pure function of the step (see data/pipeline.py).

Every checkpoint carries, in orbax's custom metadata, a SHA-256 digest of each part of the
state (`params`, `opt_state`, `step`: dtype, shape and bytes of every array, in tree order),
taken from the arrays being saved (gathered from every process of a multi-process job). A
restore recomputes the digests of what it read and
compares: a checkpoint that cannot be read (truncated, missing files) or whose contents
differ from what was saved (a flipped byte) is damaged. The latest intact checkpoint is
used, with a warning naming each damaged one and what failed; a damaged checkpoint newer
than the one resumed from is moved to `<workdir>/checkpoints_damaged/` so that training can
write that step again. When no checkpoint is intact the restore stops with one message.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from muscle_jax import distributed

DIGESTS_KEY = "muscle_jax_sha256"
DAMAGED_DIR = "checkpoints_damaged"


class NoIntactCheckpoint(RuntimeError):
    """Every checkpoint of a workdir is damaged."""


def manager(workdir: str | Path, max_to_keep: int = 2, read_only: bool = False) -> ocp.CheckpointManager:
    """The manager of `<workdir>/checkpoints`."""
    directory = Path(workdir).expanduser().resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only, read_only=read_only)
    return ocp.CheckpointManager(directory, options=options)


def digests(state: Any) -> dict[str, str]:
    """SHA-256 of each top-level part of a state (a TrainState or a dict of its parts)."""
    parts = serialization.to_state_dict(state) if not isinstance(state, dict) else state
    result = {}
    for name in sorted(parts):
        hasher = hashlib.sha256()
        for leaf in jax.tree.leaves(distributed.to_host(parts[name])):
            array = np.asarray(leaf)
            hasher.update(f"{array.dtype.str}{array.shape}".encode())
            hasher.update(np.ascontiguousarray(array).tobytes())
        result[name] = hasher.hexdigest()
    return result


def save(checkpoints: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Saves `state` at `step` with its digests (asynchronously; call
    `checkpoints.wait_until_finished()` before exit)."""
    checkpoints.save(step, args=ocp.args.StandardSave(state), force=True,
                     custom_metadata={DIGESTS_KEY: digests(state)})


def _recorded_digests(checkpoints: ocp.CheckpointManager, step: int) -> dict[str, str] | None:
    metadata = checkpoints.metadata(step)
    return (getattr(metadata, "custom_metadata", None) or {}).get(DIGESTS_KEY)


def _problem(checkpoints: ocp.CheckpointManager, step: int, restored: dict[str, Any]) -> str | None:
    """What is wrong with a restored checkpoint's parts, or None when they match their digests."""
    recorded = _recorded_digests(checkpoints, step)
    if recorded is None:
        logging.warning("checkpoint %s has no digest (written before digests were kept): not verified",
                        Path(checkpoints.directory) / str(step))
        return None
    got = digests(restored)
    differing = [name for name in got if recorded.get(name) != got[name]]
    return f"its {', '.join(differing)} differ from what was saved" if differing else None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _restore_verified(checkpoints: ocp.CheckpointManager, read, parts: tuple[str, ...] | None = None
                      ) -> tuple[Any, int, list[tuple[int, str]]] | None:
    """(what `read(step)` returns, step, damaged newer steps with their problems) for the newest
    intact checkpoint; None without checkpoints; `NoIntactCheckpoint` when none is intact.
    `parts`: the top-level parts `read` returns (None: all)."""
    steps = sorted(checkpoints.all_steps(), reverse=True)
    damaged: list[tuple[int, str]] = []
    directory = Path(checkpoints.directory)
    for step in steps:
        try:
            restored = read(step)
        except Exception as error:  # noqa: BLE001 — any failure to read marks the checkpoint damaged
            problem = f"could not be read ({_first_line(error)})"
        else:
            as_parts = serialization.to_state_dict(restored) if not isinstance(restored, dict) else restored
            problem = _problem(checkpoints, step, {k: v for k, v in as_parts.items() if parts is None or k in parts})
        if problem is None:
            for bad_step, bad_problem in damaged:
                logging.warning("checkpoint %s is damaged: %s; using the intact one at step %d",
                                directory / str(bad_step), bad_problem, step)
            return restored, step, damaged
        damaged.append((step, problem))
    if damaged:
        raise NoIntactCheckpoint(
            f"no intact checkpoint in {directory}: " + "; ".join(f"step {s} {p}" for s, p in damaged)
            + " (move the workdir aside to train from scratch)"
        )
    return None


def restore_latest(checkpoints: ocp.CheckpointManager, like_state: Any) -> tuple[Any, int] | None:
    """(state, step) of the newest intact checkpoint shaped like `like_state`, or None if there
    is none; damaged newer checkpoints are reported and moved aside (module docstring)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
    found = _restore_verified(checkpoints, lambda step: checkpoints.restore(step, args=ocp.args.StandardRestore(abstract)))
    if found is None:
        return None
    state, step, damaged = found
    if damaged:
        if distributed.is_primary():  # one process moves the shared folders; the others wait for it
            quarantine = Path(checkpoints.directory).parent / DAMAGED_DIR
            quarantine.mkdir(exist_ok=True)
            for bad_step, _ in damaged:
                target = quarantine / str(bad_step)
                if target.exists():
                    shutil.rmtree(target)
                shutil.move(str(Path(checkpoints.directory) / str(bad_step)), target)
                logging.warning("moved the damaged checkpoint of step %d to %s", bad_step, target)
        distributed.barrier("muscle_jax: damaged checkpoints moved aside")
        checkpoints.reload()
    return state, step


def restore_latest_params(checkpoints: ocp.CheckpointManager, like_params: Any) -> tuple[Any, int] | None:
    """(params, step) of the newest intact checkpoint: only the parameters, shaped and placed
    like `like_params` (arrays or `jax.ShapeDtypeStruct`s with shardings), not the optimiser
    state; None if there is no checkpoint. Read-only: a damaged newer one is only reported."""
    abstract = {"params": jax.tree.map(ocp.utils.to_shape_dtype_struct, like_params)}
    restore_args = jax.tree.map(lambda leaf: ocp.ArrayRestoreArgs(sharding=leaf.sharding), abstract)

    def read(step):
        return checkpoints.restore(step, args=ocp.args.PyTreeRestore(abstract, restore_args, partial_restore=True))

    found = _restore_verified(checkpoints, read, parts=("params",))
    if found is None:
        return None
    restored, step, _ = found
    return restored["params"], step
