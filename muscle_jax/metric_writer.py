"""Per-step training metrics a person can watch: `metrics.jsonl` and TensorBoard event files.

`<workdir>/metrics.jsonl` has one JSON object per step (`step`, then scalars such as
`loss`, `grad_norm`, `learning_rate` and per-fold `loss/fold3`), flushed as it is written,
so `tail -f` follows a run. `<workdir>/tensorboard/` holds the same scalars as event files
written by tensorboardX (no TensorFlow): `tensorboard --logdir <workdir>/tensorboard`.
A resumed run first drops what an interrupted run logged after its last checkpoint (the
lines, and through tensorboardX's `purge_step` the events), so every step appears once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tensorboardX import SummaryWriter

METRICS_FILE = "metrics.jsonl"
EVENTS_DIR = "tensorboard"


def read_metrics(workdir: str | Path) -> list[dict[str, Any]]:
    """Every line of `<workdir>/metrics.jsonl` ([] when there is none)."""
    path = Path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricWriter:
    """Appends scalars per step to metrics.jsonl and to TensorBoard, from `start_step` on."""

    def __init__(self, workdir: str | Path, start_step: int = 0):
        workdir = Path(workdir)
        self._path = workdir / METRICS_FILE
        kept = [row for row in read_metrics(workdir) if row["step"] <= start_step]
        self._path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        self._file = self._path.open("a")
        self._events = SummaryWriter(str(workdir / EVENTS_DIR), purge_step=start_step + 1 if start_step else None,
                                     flush_secs=10)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self._file.write(json.dumps({"step": step, **scalars}) + "\n")
        self._file.flush()
        for name, value in scalars.items():
            self._events.add_scalar(name, value, step)

    def close(self) -> None:
        self._file.close()
        self._events.close()

    def __enter__(self) -> "MetricWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
