"""A built dataset's identity: everything that determines its records, so a change rebuilds it.

The identity of an `ultrasound_states` dataset is the builder config's fields that the build
reads (preset and overrides, ROI source and size, targets, EMG conditioning, frame skipping,
the segmentation model's digest), the SHA-256 of every source file of the code that makes
its records (`muscle_jax/data/**`, and `muscle_jax/segmentation/**` — the ROI stage), and, for
a real-recording layout, the resolved folder with each file's size, modification time and,
for files under `CONTENT_HASH_MAX_BYTES` (signals, calibrations), a hash of its contents.
The dataset's name carries a digest of the identity, so a changed input gets a new dataset
instead of silently reusing an old one; the identity itself is written beside the built
dataset (`identity.json`), which lets the log say what changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]
CODE_DIRS = ("data", "segmentation")
IDENTITY_FILE = "identity.json"
CONTENT_HASH_MAX_BYTES = 4 << 20


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def code_digests() -> dict[str, str]:
    """SHA-256 of each Python source file that makes a dataset's records, by path in the package."""
    return {
        str(path.relative_to(PACKAGE.parent)): _sha256(path.read_bytes())
        for directory in CODE_DIRS
        for path in sorted((PACKAGE / directory).rglob("*.py"))
    }


def files_digests(folder: Path) -> dict[str, str]:
    """'size mtime_ns [sha256]' of every file under `folder`, by relative path."""
    result = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        entry = f"{stat.st_size} {stat.st_mtime_ns}"
        if stat.st_size <= CONTENT_HASH_MAX_BYTES:
            entry += " " + _sha256(path.read_bytes())
        result[str(path.relative_to(folder))] = entry
    return result


def identity(fields: dict[str, Any], manual_dir: Path | None) -> dict[str, Any]:
    """The identity of a dataset built from `fields` (JSON-able) and, for a real layout, `manual_dir`."""
    result: dict[str, Any] = {"fields": json.loads(json.dumps(fields, sort_keys=True, default=list)),
                              "code": code_digests()}
    if manual_dir is not None:
        folder = Path(manual_dir).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of recordings (config.dataset.manual_dir)")
        result["manual_dir"] = str(folder)
        result["files"] = files_digests(folder)
    return result


def digest(identity_: dict[str, Any]) -> str:
    """A short name-safe digest of an identity."""
    return _sha256(json.dumps(identity_, sort_keys=True).encode())[:10]


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 6) -> list[str]:
    """What changed from `old` to `new`, one entry per changed field, code file or recording file."""
    changed = []
    for section in ("fields", "code", "files"):
        before, after = old.get(section, {}), new.get(section, {})
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                what = {"fields": "setting", "code": "code", "files": "recording file"}[section]
                state = "added" if key not in before else "removed" if key not in after else "changed"
                changed.append(f"{what} {key} {state}")
    if old.get("manual_dir") != new.get("manual_dir"):
        changed.insert(0, f"recordings folder {old.get('manual_dir')} → {new.get('manual_dir')}")
    return changed[:limit] + ([f"… and {len(changed) - limit} more"] if len(changed) > limit else [])


def write(directory: Path, identity_: dict[str, Any]) -> None:
    (Path(directory) / IDENTITY_FILE).write_text(json.dumps(identity_, indent=1, sort_keys=True) + "\n")


def read(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / IDENTITY_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
