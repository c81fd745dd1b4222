"""What a live session reports when it stops: how many frames, where each went, how late.

Latency is capture to estimate (`ready_s - capture_s`) over the frames that were estimated; the
reader's lag is capture to prepared (decoding, ROI, stack), the part of it spent before the
hand-over. Sustained frames/s is the rate at which estimates became ready, first to last. The
account holds counters and fixed histograms (0.1 ms bins up to 10 s, beyond that counted as
overflow with the true maximum kept), so a session of any length reports in constant memory.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

from muscle_jax.streaming.prepare import OK
from muscle_jax.streaming.sinks import Row

PERCENTILES = (50, 95, 99)
_BIN_MS = 0.1
_BINS = 100_000  # up to 10 s


class _Histogram:
    def __init__(self):
        self.counts = np.zeros(_BINS + 1, np.int64)  # last bin: overflow
        self.max_ms = -math.inf

    def add(self, value_ms: float) -> None:
        self.counts[min(max(int(value_ms / _BIN_MS), 0), _BINS)] += 1
        self.max_ms = max(self.max_ms, value_ms)

    def percentiles(self) -> dict[str, float]:
        """Each percentile (nearest rank) as the upper edge of its bin, within 0.1 ms above the
        exact value and never above the maximum; beyond 10 s the maximum bounds it."""
        total = int(self.counts.sum())
        result = {}
        for p in PERCENTILES:
            if not total:
                result[f"p{p}"] = math.nan
                continue
            rank = math.ceil(p / 100 * total)
            bin_index = int(np.searchsorted(np.cumsum(self.counts), rank))
            result[f"p{p}"] = self.max_ms if bin_index == _BINS else min((bin_index + 1) * _BIN_MS, self.max_ms)
        result["max"] = self.max_ms if total else math.nan
        return result


@dataclasses.dataclass(frozen=True)
class Summary:
    """Counts by status, latency percentiles (ms) of the estimated frames, and rates (frames/s)."""

    frames: int
    by_status: dict[str, int]
    latency_ms: dict[str, float]
    reader_lag_ms: dict[str, float]
    sustained_fps: float
    source_fps: float
    max_waiting: int
    stopped_by: str

    def lines(self) -> list[str]:
        """The summary as a person reads it."""
        counts = ", ".join(f"{count} {status}" for status, count in self.by_status.items())
        latency = ", ".join(f"p{p} {self.latency_ms[f'p{p}']:.1f}" for p in PERCENTILES)
        return [
            f"{self.frames} frames ({counts or 'none'}); stopped by {self.stopped_by}",
            f"latency capture → estimate, ms: {latency}, max {self.latency_ms['max']:.1f} "
            f"(reading and preparing: p50 {self.reader_lag_ms['p50']:.1f}, p99 {self.reader_lag_ms['p99']:.1f})",
            f"sustained {self.sustained_fps:.1f} estimated frames/s, source {self.source_fps:.1f} frames/s; "
            f"at most {self.max_waiting} frame(s) waited for the estimator",
        ]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class LatencyAccount:
    """Takes every row of a session, in order, and gives its `Summary` (module docstring)."""

    def __init__(self):
        self._by_status = collections.Counter()
        self._latency, self._lag = _Histogram(), _Histogram()
        self._estimated, self._first_ready_s, self._last_ready_s = 0, math.nan, math.nan
        self._first, self._last = None, None  # (index, time_s) of the first and last timed frames

    def add(self, row: Row) -> None:
        frame = row.frame
        self._by_status[frame.status] += 1
        if math.isfinite(frame.time_s):
            self._first = self._first or (frame.index, frame.time_s)
            self._last = (frame.index, frame.time_s)
        if frame.status != OK:
            return
        self._latency.add(row.latency_ms)
        self._lag.add(1000.0 * (frame.prepared_s - frame.capture_s))
        self._estimated += 1
        self._first_ready_s = row.ready_s if self._estimated == 1 else self._first_ready_s
        self._last_ready_s = row.ready_s

    def summary(self, max_waiting: int, stopped_by: str) -> Summary:
        span_s = self._last_ready_s - self._first_ready_s
        sustained = (self._estimated - 1) / span_s if self._estimated > 1 and span_s > 0 else math.nan
        source = math.nan
        if self._first and self._last and self._last[1] > self._first[1]:
            source = (self._last[0] - self._first[0]) / (self._last[1] - self._first[1])
        return Summary(
            frames=sum(self._by_status.values()),
            by_status=dict(sorted(self._by_status.items())),
            latency_ms=self._latency.percentiles(),
            reader_lag_ms=self._lag.percentiles(),
            sustained_fps=float(sustained),
            source_fps=float(source),
            max_waiting=max_waiting,
            stopped_by=stopped_by,
        )
