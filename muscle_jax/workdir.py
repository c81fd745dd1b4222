"""A run's workdir: one run at a time, and a resume only of the run that is there.

`locked(workdir)` holds `<workdir>/.lock` (the owner's PID and host) for the whole job; a
second run refuses with a message naming the owner; a lock left by a dead process on this
host is taken over with a warning. `check_resume` compares a rerun's config with the one
recorded in `run.json` when the workdir holds checkpoints: a difference in any field that
shapes the trained models stops the run with the list of differing fields, unless the
caller asks to continue. Fields that only decide how the run is evaluated, logged, executed
or where files are (`RESUMABLE_PREFIXES`) may change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

LOCK_FILE = ".lock"
# Fields a resumed run may change: they do not shape the trained models.
RESUMABLE_PREFIXES = (
    "eval.", "runtime.", "dataset.data_dir", "train.log_every", "train.checkpoint_every",
    "train.max_checkpoints", "train.input_threads",
)


class WorkdirBusy(RuntimeError):
    """Another live process holds the workdir."""


class ConfigMismatch(ValueError):
    """A rerun's config differs from the one that trained the workdir's checkpoints."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _acquire(path: Path, me: dict[str, Any]) -> bool:
    """Creates the lock file; False when this process holds it already; `WorkdirBusy` when
    another live process does (a dead process's lock on this host is taken over)."""
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = json.loads(path.read_text())
            except (OSError, ValueError):
                owner = {}
        else:
            with os.fdopen(descriptor, "w") as handle:
                json.dump({**me, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, handle)
            return True
        if owner.get("pid") == me["pid"] and owner.get("host") == me["host"]:
            return False
        if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
            logging.warning("%s: taking over the lock of process %d, which is no longer running", path, owner["pid"])
            path.unlink(missing_ok=True)
            continue
        raise WorkdirBusy(
            f"{path.parent} is in use by process {owner.get('pid', '?')} on {owner.get('host', '?')} "
            f"(since {owner.get('started', '?')}); wait for it, or delete {path} if that process is gone"
        )


@contextlib.contextmanager
def locked(workdir: str | Path) -> Iterator[None]:
    """Holds the workdir's lock for the `with` block (re-entrant within one process)."""
    workdir = Path(workdir).expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_FILE
    if not _acquire(path, {"pid": os.getpid(), "host": socket.gethostname()}):
        yield  # this process holds it already
        return
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def config_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'field: recorded → current' for every model-shaping field that differs."""
    old, new = _flatten(recorded), _flatten(json.loads(json.dumps(current)))
    differences = []
    for field in sorted(set(old) | set(new)):
        if field.startswith(RESUMABLE_PREFIXES) or old.get(field) == new.get(field):
            continue
        differences.append(f"{field}: {old.get(field, '(absent)')!r} → {new.get(field, '(absent)')!r}")
    return differences


def has_checkpoints(workdir: str | Path) -> bool:
    directory = Path(workdir) / "checkpoints"
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


def check_resume(workdir: str | Path, config_dict: dict[str, Any], dataset: str | None, allow_changes: bool) -> list[str]:
    """The differences between this run and the one whose checkpoints `workdir` holds
    (`ConfigMismatch` unless `allow_changes`; then they are returned to be recorded)."""
    workdir = Path(workdir)
    run_file = workdir / "run.json"
    if not has_checkpoints(workdir) or not run_file.exists():
        return []
    recorded = json.loads(run_file.read_text())
    differences = config_differences(recorded.get("config", {}), config_dict)
    if dataset is not None and recorded.get("dataset") not in (None, dataset):
        differences.append(f"dataset: {recorded['dataset']!r} → {dataset!r}")
    if differences and not allow_changes:
        raise ConfigMismatch(
            f"{workdir} holds checkpoints of a run with another config ({'; '.join(differences)}); "
            "use a new --workdir to train from scratch, or --resume_with_changed_config to continue from its checkpoints"
        )
    if differences:
        logging.warning("resuming %s with a changed config: %s", workdir, "; ".join(differences))
    return differences
