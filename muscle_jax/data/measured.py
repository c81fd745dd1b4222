"""The signals measured with a recording, read at its frames: what an overlay draws beside the
estimates when the recording is one of a layout's trials (a GasFasTrack clip, or a trial of a
`recordings` folder). Frames meet signals exactly as in the dataset (`recordings.frame_positions`:
explicit index, frames file, or timestamps).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from muscle_jax.data import recordings
from muscle_jax.data.readers import align
from muscle_jax.data.readers.frames import DecodedFrames

log = logging.getLogger(__name__)


class FrameSignals:
    """A trial's measured signals, read at frames given by number and time."""

    def __init__(self, trial: recordings.TrialRef, targets: Sequence[str], declared_frames: int):
        signals = recordings.trial_signals(trial, tuple(targets), None)
        self.trial, self.signals = trial, signals
        self.targets = tuple(t for t in targets if t in signals.values)
        self._by_frame = None
        if signals.frame_samples_F is not None or trial.alignment_path is not None:
            # An explicit alignment numbers every frame of the recording: read them all once.
            every_N = np.arange(declared_frames)
            frames = DecodedFrames(trial.frames_path, np.zeros((declared_frames, 0, 0), np.uint8), every_N,
                                   np.full(declared_frames, np.nan), declared_frames)
            positions_N = recordings.frame_positions(trial, signals, frames)
            self._by_frame = {t: align.values_at(signals.column(t), positions_N) for t in self.targets}

    def at(self, index_N: np.ndarray, time_s_N: np.ndarray) -> dict[str, np.ndarray]:
        """Each signal at the frames numbered `index_N` (taken at `time_s_N`); NaN outside the recording."""
        index_N, time_s_N = np.asarray(index_N, np.int64), np.asarray(time_s_N, np.float64)
        if self._by_frame is not None:
            inside_N = (index_N >= 0) & (index_N < len(next(iter(self._by_frame.values()), [])))
            return {t: np.where(inside_N, v[np.where(inside_N, index_N, 0)], np.nan) for t, v in self._by_frame.items()}
        positions_N = align.positions_from_times(time_s_N, self.signals.time_s_S)
        return {t: align.values_at(self.signals.column(t), positions_N) for t in self.targets}


def measured_signals(input_path: Path | str, layout: str, manual_dir: Path | None, targets: Sequence[str],
                     declared_frames: int) -> FrameSignals | None:
    """The signals of `input_path` when it is one of the layout's trials, else None (nothing measured)."""
    if layout not in recordings.LAYOUTS:
        return None
    try:
        trials = recordings.list_trials(layout, manual_dir)
    except (OSError, ValueError) as error:
        log.info("no measured signals for %s: the run's %s layout cannot be listed (%s)", input_path, layout, error)
        return None
    wanted = Path(input_path).resolve()
    trial = next((t for t in trials if t.frames_path.resolve() == wanted), None)
    if trial is None:
        return None
    signals = FrameSignals(trial, targets, declared_frames)
    log.info("%s is trial %s of the %s layout: its measured %s are drawn beside the estimates",
             input_path, trial.name, layout, ", ".join(signals.targets))
    return signals
