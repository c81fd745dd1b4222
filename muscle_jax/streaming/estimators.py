"""Per-frame estimators: each turns a batch of prepared frames into its own named columns.

The session runs every estimator on each batch and lays their columns side by side, in order, in
the CSV, the LSL stream and the overlay. An estimator is any object with

    channels: tuple[Channel, ...]                 # its columns: name and unit
    warm_up(max_batch: int) -> None               # compile or load now, not on the first frame
    estimate(frames: Sequence[PreparedFrame]) -> Estimates   # B × len(channels), NaN where none

`EnsembleEstimator` adds the fold ensemble's mean and spread for every target. The muscle
architecture stage plugs in the same way: an estimator whose channels are the architecture
columns (e.g. `fascicle_angle_deg`, `pennation_deg`, `thickness_mm`, `fascicle_length_mm`), which
reads `PreparedFrame.gray_HxW` (the whole frame) and returns its aponeurosis and fascicle lines in
`Estimates.lines` for the overlay to draw.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Protocol, Sequence

import numpy as np

from muscle_jax.report import UNITS
from muscle_jax.streaming.prepare import OK, PreparedFrame


@dataclasses.dataclass(frozen=True)
class Channel:
    """One output column: its name (CSV header, LSL channel label) and unit."""

    name: str
    unit: str


@dataclasses.dataclass(frozen=True)
class Estimates:
    """An estimator's output for B frames: `values_BxC` (float64, NaN where a frame has no
    estimate) and, per frame, optional overlay geometry (name → P×2 frame pixels, x then y)."""

    values_BxC: np.ndarray
    lines: tuple[Mapping[str, np.ndarray], ...] = ()


class FrameEstimator(Protocol):
    channels: tuple[Channel, ...]

    def warm_up(self, max_batch: int) -> None: ...

    def estimate(self, frames: Sequence[PreparedFrame]) -> Estimates: ...


def batch_sizes(max_batch: int) -> tuple[int, ...]:
    """The batch sizes compiled for a live session: powers of two up to `max_batch`, and it."""
    sizes = [1]
    while sizes[-1] * 2 < max_batch:
        sizes.append(sizes[-1] * 2)
    return tuple(sorted(set(sizes + [max_batch])))


def ensemble_channels(targets: Sequence[str]) -> tuple[Channel, ...]:
    """`<target>`, `<target>_std` for each target, in order (the columns `predict` writes)."""
    return tuple(Channel(name, UNITS.get(target, "")) for target in targets for name in (target, f"{target}_std"))


def interleave(mean_NxT: np.ndarray, std_NxT: np.ndarray) -> np.ndarray:
    """Means and spreads laid out as `ensemble_channels` names them: N × 2T."""
    return np.stack([mean_NxT, std_NxT], axis=-1).reshape(len(mean_NxT), -1)


class EnsembleEstimator:
    """The fold ensemble of a trained run: `<target>` (mean across folds) and `<target>_std`
    (their standard deviation), in the target's unit, for every target of the run."""

    def __init__(self, ensemble):
        self.ensemble = ensemble
        self.channels = ensemble_channels(ensemble.targets)
        self._sizes = (1,)

    def warm_up(self, max_batch: int) -> None:
        self._sizes = batch_sizes(max_batch)
        for size in self._sizes:
            self.ensemble.predict(np.zeros((size, *self.ensemble.image_shape), np.uint8), batch_size=size)

    def estimate(self, frames: Sequence[PreparedFrame]) -> Estimates:
        values_BxC = np.full((len(frames), len(self.channels)), np.nan)
        rows = [b for b, frame in enumerate(frames) if frame.status == OK]
        if rows:
            inputs_NxHxWxS = np.stack([frames[b].inputs_HxWxS for b in rows])
            # The smallest compiled batch that holds them all (one call), else the largest, in turn.
            size = next((s for s in self._sizes if s >= len(rows)), self._sizes[-1])
            values_BxC[rows] = interleave(*self.ensemble.predict(inputs_NxHxWxS, batch_size=size))
        return Estimates(values_BxC)
