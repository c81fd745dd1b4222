"""Which signal value belongs to which video frame.

Alignment is a fractional sample position per frame: an explicit index (GasFasTrack's
`frameInds`, a `sample` column) gives whole positions, timestamps give positions by
linear interpolation of the signal's sample times. Values are then read by linear
interpolation between the two neighbouring samples. A frame outside the signal, or
next to a NaN sample, gets NaN: the caller reports it, never fills it.
"""

from __future__ import annotations

import numpy as np


def positions_from_index(
    frame_samples_F: np.ndarray, frame_index_N: np.ndarray, declared_frames: int, video: str, index_source: str
) -> np.ndarray:
    """Sample positions of the decoded frames `frame_index_N` from an explicit frame→sample index.

    The index must have one entry per frame of the video: a count that disagrees means the
    two files do not describe the same recording, and is an error naming both.
    """
    if len(frame_samples_F) != declared_frames:
        raise ValueError(
            f"{video}: the video has {declared_frames} frames but {index_source} indexes {len(frame_samples_F)}; "
            "frame count and signal index disagree"
        )
    return frame_samples_F[frame_index_N].astype(np.float64)


# Frame times and signal times must be in the same unit: spans further apart than this factor
# (milliseconds against seconds is 1000) are refused rather than aligned.
MAX_SPAN_RATIO = 100.0


def check_time_spans(frame_time_s_N: np.ndarray, signal_time_s_S: np.ndarray, frames_source: str,
                     signals_source: str) -> None:
    """An error naming both sources and spans when the frames' and the signal's time spans are
    implausibly far apart (a unit mistake such as milliseconds for seconds)."""
    frames = frame_time_s_N[np.isfinite(frame_time_s_N)]
    if len(frames) < 2 or len(signal_time_s_S) < 2:
        return
    frame_span, signal_span = float(frames.max() - frames.min()), float(signal_time_s_S[-1] - signal_time_s_S[0])
    if frame_span <= 0 or signal_span <= 0:
        return
    ratio = signal_span / frame_span
    if not 1 / MAX_SPAN_RATIO <= ratio <= MAX_SPAN_RATIO:
        raise ValueError(
            f"{frames_source}: the frames span {frames.min():.4g}–{frames.max():.4g} s but {signals_source} spans "
            f"{signal_time_s_S[0]:.4g}–{signal_time_s_S[-1]:.4g} ({ratio:.3g}× as long): time_s must be seconds in both "
            "(milliseconds?)"
        )


def positions_from_times(frame_time_s_N: np.ndarray, signal_time_s_S: np.ndarray, frames_source: str = "frames",
                         signals_source: str = "signals") -> np.ndarray:
    """Fractional sample positions of frames taken at `frame_time_s_N` (NaN outside the signal's
    span); spans in implausibly different units are an error (`check_time_spans`)."""
    check_time_spans(frame_time_s_N, signal_time_s_S, frames_source, signals_source)
    positions_N = np.interp(frame_time_s_N, signal_time_s_S, np.arange(len(signal_time_s_S), dtype=np.float64))
    # A half-sample tolerance admits the frame that lands on the edge up to rounding of the clocks.
    step = np.median(np.diff(signal_time_s_S)) if len(signal_time_s_S) > 1 else 0.0
    outside_N = (frame_time_s_N < signal_time_s_S[0] - step / 2) | (frame_time_s_N > signal_time_s_S[-1] + step / 2)
    outside_N |= ~np.isfinite(frame_time_s_N)
    return np.where(outside_N, np.nan, positions_N)


def values_at(values_S: np.ndarray, positions_N: np.ndarray) -> np.ndarray:
    """Linear interpolation of a signal at fractional sample positions; NaN positions give NaN."""
    valid_N = np.isfinite(positions_N)
    clipped_N = np.clip(np.where(valid_N, positions_N, 0.0), 0, len(values_S) - 1)
    lower_N = np.floor(clipped_N).astype(np.int64)
    upper_N = np.minimum(lower_N + 1, len(values_S) - 1)
    weight_N = clipped_N - lower_N
    # Whole positions read their own sample only, so a NaN next door does not leak into them.
    upper_part_N = np.where(weight_N > 0, weight_N * values_S[upper_N], 0.0)
    result_N = (1.0 - weight_N) * values_S[lower_N] + upper_part_N
    return np.where(valid_N, result_N, np.nan)
