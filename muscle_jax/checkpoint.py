"""A thin layer over orbax's CheckpointManager for the fold-stacked train state.

Only the state's arrays are saved (params, optimiser state, step); the input position needs
no saving because batches are a pure function of the step (see data/pipeline.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


def manager(workdir: str | Path, max_to_keep: int = 2, read_only: bool = False) -> ocp.CheckpointManager:
    """The manager of `<workdir>/checkpoints`."""
    directory = Path(workdir).expanduser().resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only, read_only=read_only)
    return ocp.CheckpointManager(directory, options=options)


def save(checkpoints: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Saves `state` at `step` (asynchronously; call `checkpoints.wait_until_finished()` before exit)."""
    checkpoints.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_latest(checkpoints: ocp.CheckpointManager, like_state: Any) -> tuple[Any, int] | None:
    """(state, step) of the latest checkpoint shaped like `like_state`, or None if there is none."""
    step = checkpoints.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
    return checkpoints.restore(step, args=ocp.args.StandardRestore(abstract)), step


def restore_latest_params(checkpoints: ocp.CheckpointManager, like_params: Any) -> tuple[Any, int] | None:
    """(params, step) of the latest checkpoint: only the parameters, shaped and placed like
    `like_params` (arrays or `jax.ShapeDtypeStruct`s with shardings), not the optimiser
    state; None if there is no checkpoint."""
    step = checkpoints.latest_step()
    if step is None:
        return None
    abstract = {"params": jax.tree.map(ocp.utils.to_shape_dtype_struct, like_params)}
    restore_args = jax.tree.map(lambda leaf: ocp.ArrayRestoreArgs(sharding=leaf.sharding), abstract)
    restored = checkpoints.restore(step, args=ocp.args.PyTreeRestore(abstract, restore_args, partial_restore=True))
    return restored["params"], step
