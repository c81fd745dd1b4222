"""Per-frame estimators: each turns a batch of prepared frames into its own named columns.

The session runs every estimator on each batch and lays their columns side by side, in order, in
the CSV, the LSL stream and the overlay. An estimator is any object with

    channels: tuple[Channel, ...]                 # its columns: name and unit
    warm_up(max_batch: int) -> None               # compile or load now, not on the first frame
    estimate(frames: Sequence[PreparedFrame]) -> Estimates   # B × len(channels), NaN where none

`EnsembleEstimator` adds the fold ensemble's mean and spread for every target;
`ArchitectureEstimator` the muscle architecture measured on the whole frame
(`muscle_jax.architecture`: aponeurosis and fascicle angles, pennation, thickness and fascicle
length in the frame's pixels), with its aponeurosis and fascicle lines in `Estimates.lines`
for the overlay to draw.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Protocol, Sequence

import numpy as np

from muscle_jax.architecture import geometry, measure
from muscle_jax.data.readers.frames import Crop
from muscle_jax.report import UNITS
from muscle_jax.streaming.prepare import OK, PreparedFrame

ARCHITECTURE_CHANNELS = (
    ("superficial_aponeurosis_angle_deg", "deg"), ("deep_aponeurosis_angle_deg", "deg"), ("fascicle_angle_deg", "deg"),
    ("pennation_deg", "deg"), ("thickness_px", "px"), ("fascicle_length_px", "px"),
)


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


def _curve_xy(coeffs: np.ndarray, column_range: tuple[float, float]) -> np.ndarray:
    columns = np.linspace(column_range[0], column_range[1], 24)
    return np.stack([columns, np.polyval(coeffs, columns)], axis=1)


def architecture_lines(result: measure.FrameArchitecture) -> dict[str, np.ndarray]:
    """The aponeurosis centre lines over the columns both cover, and one fascicle line through
    the middle column at the measured image angle, between them (frame pixels, x then y)."""
    if not result.found or result.column_range is None:
        return {}
    lines = {"superficial_aponeurosis": _curve_xy(result.superficial_coeffs, result.column_range),
             "deep_aponeurosis": _curve_xy(result.deep_coeffs, result.column_range)}
    fascicle = geometry.fascicle_through(result.superficial_coeffs, result.deep_coeffs, result.column_range,
                                         result.fascicle_angle_image_deg, float(np.mean(result.column_range)))
    if fascicle is not None:
        lines["fascicle"] = fascicle
    return lines


class ArchitectureEstimator:
    """The muscle architecture of each frame, measured on the whole frame within the image
    region the session holds (`region`; found in each frame when None)."""

    def __init__(self, region: Crop | None = None, batch_size: int = 16):
        self.region = region
        self.channels = tuple(Channel(name, unit) for name, unit in ARCHITECTURE_CHANNELS)
        self._config = measure.default_config()
        self._config.batch_size = batch_size

    def warm_up(self, max_batch: int) -> None:
        del max_batch  # the U-Net runs at one working size: one compilation serves every batch
        blank = np.zeros((64, 64), np.uint8)
        measure.measure_frames([blank], [None], self._config)

    def estimate(self, frames: Sequence[PreparedFrame]) -> Estimates:
        values_BxC = np.full((len(frames), len(self.channels)), np.nan)
        lines: list[Mapping[str, np.ndarray]] = [{} for _ in frames]
        rows = [b for b, frame in enumerate(frames) if frame.gray_HxW is not None]
        if rows:
            results = measure.measure_frames([frames[b].gray_HxW for b in rows], [self.region] * len(rows), self._config)
            for b, result in zip(rows, results, strict=True):
                values_BxC[b] = [getattr(result, name) for name, _ in ARCHITECTURE_CHANNELS]
                lines[b] = architecture_lines(result)
        return Estimates(values_BxC, tuple(lines))
