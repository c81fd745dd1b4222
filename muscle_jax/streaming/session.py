"""One live session: a reader thread decodes and prepares every frame; the calling thread takes
what waits in the hand-over, runs the estimators, and writes each frame's row to every sink (and
its picture to the overlay) in frame order, until the source ends, fails, or `stop` is set.

However it ends, the session closes what it opened (the CSV flushed and closed, the LSL outlet
destroyed, the mp4 finalised) and returns its summary with the error that ended it, if any, so
that the caller can report both.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from typing import Callable, Sequence

import numpy as np

from muscle_jax.data.measured import FrameSignals
from muscle_jax.data.readers.stream import LiveSource, SourceError
from muscle_jax.overlay import OverlayFrame, OverlayWorker, shown_time_s
from muscle_jax.streaming.estimators import Channel, FrameEstimator
from muscle_jax.streaming.handover import NewestFirst
from muscle_jax.streaming.latency import LatencyAccount, Summary
from muscle_jax.streaming.prepare import DROPPED, UNDECODABLE, FramePreparer, PreparedFrame
from muscle_jax.streaming.sinks import Row

log = logging.getLogger(__name__)

# How long the estimator waits for frames before looking at `stop` again.
_POLL_S = 0.05
# After `stop`, how long a reader blocked on a silent source (a pipe, a device) is waited for.
_STOP_GRACE_S = 1.0


@dataclasses.dataclass(frozen=True)
class Outcome:
    summary: Summary
    error: BaseException | None


def channels_of(estimators: Sequence[FrameEstimator]) -> tuple[Channel, ...]:
    """Every estimator's channels, side by side in order."""
    return tuple(channel for estimator in estimators for channel in estimator.channels)


def _read(source: LiveSource, preparer: FramePreparer, handover: NewestFirst, skip_bad_frames: bool) -> None:
    """The reader thread: every frame of `source`, prepared, into the hand-over; then `finish`."""
    try:
        with source:
            for item in source.frames():
                prepared = preparer.prepare(item)
                handover.put(prepared)
                if prepared.status == UNDECODABLE and not skip_bad_frames:
                    raise SourceError(
                        f"{source.spec.name}: frame {prepared.index} could not be decoded ({prepared.reason}); "
                        "pass --skip_bad_frames to go on, counting such frames"
                    )
        handover.finish()
    except BaseException as error:  # noqa: BLE001 — handed to the estimator thread, which reports it
        handover.finish(error)


def run(
    source: LiveSource,
    preparer: FramePreparer,
    estimators: Sequence[FrameEstimator],
    sinks: Sequence,
    stop: threading.Event,
    clock: Callable[[], float],
    capacity: int = 4,
    skip_bad_frames: bool = False,
    overlay: OverlayWorker | None = None,
    measured: FrameSignals | None = None,
) -> Outcome:
    """Runs the session to its end (module docstring); `estimators` must be warmed up already."""
    handover = NewestFirst(capacity, PreparedFrame.without_pixels)
    account = LatencyAccount()
    channel_count = len(channels_of(estimators))
    reader = threading.Thread(target=_read, args=(source, preparer, handover, skip_bad_frames), name="reader", daemon=True)
    error: BaseException | None = None
    stop_seen_s, dropped = None, 0
    reader.start()
    try:
        while True:
            if stop.is_set() and stop_seen_s is None:
                stop_seen_s = clock()
            taken = handover.take(_POLL_S)
            rows = [Row(dataclasses.replace(d, status=DROPPED), np.full(channel_count, math.nan), clock()) for d in taken.dropped]
            dropped += len(rows)
            if taken.items:
                rows += _estimate(taken.items, estimators, clock, overlay, measured, dropped)
            for sink in sinks:
                sink.write(rows)
            for row in rows:
                account.add(row)
            if taken.finished:
                error = taken.error
                break
            if stop_seen_s is not None and clock() - stop_seen_s > _STOP_GRACE_S:
                log.warning("%s: the reader did not stop within %.1f s (blocked on a silent source); leaving it",
                            source.spec.name, _STOP_GRACE_S)
                break
    except BaseException as failure:  # noqa: BLE001 — every sink is still closed below
        error = failure
    finally:
        # Whoever set `stop` before this point (Ctrl-C) ended the session, even when the reader
        # then reported the end of its source first.
        interrupted = stop.is_set()
        stop.set()
        reader.join(timeout=_STOP_GRACE_S)
        error = close_all([*sinks, *([overlay] if overlay else [])], error)
    if isinstance(error, KeyboardInterrupt):  # a second Ctrl-C, while the first was being honoured
        stopped_by = "an interrupt"
    else:
        stopped_by = "an error" if error is not None else "an interrupt" if interrupted else "the end of the source"
    summary = account.summary(handover.max_waiting, stopped_by)
    return Outcome(summary, error)


def _estimate(frames: list[PreparedFrame], estimators, clock, overlay: OverlayWorker | None,
              measured: FrameSignals | None, dropped: int) -> list[Row]:
    results = [estimator.estimate(frames) for estimator in estimators]
    values_BxC = np.concatenate([r.values_BxC for r in results], axis=1) if results else np.zeros((len(frames), 0))
    ready_s = clock()
    rows = [Row(frame, values_BxC[b], ready_s) for b, frame in enumerate(frames)]
    if overlay is not None:
        signals = measured.at([f.index for f in frames], [f.time_s for f in frames]) if measured else {}
        for b, row in enumerate(rows):
            frame = row.frame
            if frame.gray_HxW is None:
                continue
            lines = dict(frame.lines)
            for result in results:
                lines.update(result.lines[b] if result.lines else {})
            caption = (f"frame {frame.index}  {frame.time_s:.2f} s  {frame.status}  "
                       f"latency {row.latency_ms:.0f} ms  dropped {dropped}")
            overlay.submit(OverlayFrame(shown_time_s(frame.time_s, frame.index, overlay.video.frame_rate), frame.gray_HxW, lines, row.values_C,
                                        {t: float(v[b]) for t, v in signals.items()}, caption))
    return rows


def close_all(closables: Sequence, error: BaseException | None) -> BaseException | None:
    """Closes each (all of them, even when one fails); the first error wins."""
    for closable in closables:
        try:
            closable.close()
        except Exception as failure:  # noqa: BLE001 — the rest must still close
            log.error("closing %s failed: %s", type(closable).__name__, failure)
            error = error or failure
    return error
