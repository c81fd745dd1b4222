"""Where live estimates go, one row per source frame as it is ready: a CSV file and an LSL outlet.

Both receive the same rows in frame order: every frame the source delivered, including the ones
that got no estimate (status other than `ok`, NaN values), so that a gap is written, never
silent. Times are on LSL's clock (`pylsl.local_clock`, the clock of the session), so that the
CSV's `capture_s`/`ready_s` and the stream's timestamps line up with anything else a lab records
through LSL.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pylsl

from muscle_jax.streaming.estimators import Channel
from muscle_jax.streaming.prepare import STATUSES, PreparedFrame

LSL_TYPE = "MuscleState"
# How long a closing outlet waits for its last samples to reach connected consumers.
_DRAIN_S = 0.25
TIMING_COLUMNS = ("status", "capture_s", "ready_s", "latency_ms")


@dataclasses.dataclass(frozen=True)
class Row:
    """One source frame's output: its account, the estimators' values (one per channel, NaN where
    none) and when they were ready."""

    frame: PreparedFrame
    values_C: np.ndarray
    ready_s: float

    @property
    def latency_ms(self) -> float:
        return 1000.0 * (self.ready_s - self.frame.capture_s)


def csv_header(channels: Sequence[Channel]) -> list[str]:
    """`frame,time_s`, the estimators' channels (as `predict` writes its targets), then the timing."""
    return ["frame", "time_s", *(c.name for c in channels), *TIMING_COLUMNS]


class CsvSink:
    """The CSV, written and flushed row by row: a crash or Ctrl-C loses nothing already written."""

    def __init__(self, path: Path | str, channels: Sequence[Channel]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 — closed in close()
        self._file.write(",".join(csv_header(channels)) + "\n")
        self._file.flush()

    def write(self, rows: Sequence[Row]) -> None:
        for row in rows:
            frame = row.frame
            cells = [str(frame.index), f"{frame.time_s:.6f}", *(f"{v:.6g}" for v in row.values_C),
                     frame.status, f"{frame.capture_s:.6f}", f"{row.ready_s:.6f}", f"{row.latency_ms:.3f}"]
            self._file.write(",".join(cells) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class LslSink:
    """An LSL outlet: one sample per source frame, timestamped with the frame's capture time.

    Channels: `frame` (the source's frame number), the estimators' channels, `latency_ms` (capture
    to estimate), all double precision. The stream's description carries each channel's label,
    unit and type (XDF's `desc/channels/channel`), and what produced it (`desc/muscle_jax`).
    """

    def __init__(self, name: str, channels: Sequence[Channel], nominal_rate_hz: float | None, source_id: str,
                 provenance: Mapping[str, str]):
        self.channels = (Channel("frame", "count"), *channels, Channel("latency_ms", "ms"))
        info = pylsl.StreamInfo(name, LSL_TYPE, len(self.channels), nominal_rate_hz or pylsl.IRREGULAR_RATE,
                                pylsl.cf_double64, source_id)
        described = info.desc().append_child("channels")
        for channel in self.channels:
            element = described.append_child("channel")
            element.append_child_value("label", channel.name)
            element.append_child_value("unit", channel.unit)
            element.append_child_value("type", _channel_type(channel.name))
        produced_by = info.desc().append_child("muscle_jax")
        for key, value in provenance.items():
            produced_by.append_child_value(key, str(value))
        produced_by.append_child_value("statuses", " ".join(STATUSES))
        produced_by.append_child_value("timestamp", "capture time of the frame (LSL clock)")
        self._outlet = pylsl.StreamOutlet(info)

    def wait_for_consumer(self, timeout_s: float) -> bool:
        """Whether a consumer connected within `timeout_s` (samples pushed before that reach no one)."""
        return bool(self._outlet.wait_for_consumers(timeout_s))

    def write(self, rows: Sequence[Row]) -> None:
        for row in rows:
            sample = [float(row.frame.index), *map(float, row.values_C), row.latency_ms]
            self._outlet.push_sample(sample, row.frame.capture_s)

    def close(self) -> None:
        # liblsl sends in the background and has no flush: give connected consumers a moment to
        # receive the last samples, then destroy the outlet (pylsl does when its last reference goes).
        if self._outlet.have_consumers():
            time.sleep(_DRAIN_S)
        del self._outlet


def _channel_type(name: str) -> str:
    if name in ("frame", "latency_ms"):
        return "timing"
    return "uncertainty" if name.endswith("_std") else "estimate"
