"""Synchronised signals: GasFasTrack's MATLAB struct and plain CSV files.

Both give a `Signals`: sample times, named float arrays in this project's units and sign
conventions (`angle_deg` positive = dorsiflexion, `torque_nm` positive = plantarflexion,
`emg_v` an envelope in volts, `emg_raw_v` raw EMG in volts) and, when the source records
it, the explicit sample of each video frame.

GasFasTrack (`AGR003_push_data.mat`, MAT v5): `clips.<condition>.<push>` with 100 Hz
`time` (s), `POS` (deg), `TOR` (N·m) and `frameInds` (1-based sample of each video frame).
Its POS is positive in plantarflexion: the isokinetic plantarflexion pushes run POS from
about -21.6 to +30 with positive velocity and torque, and in the passive range-of-motion
clips the passive (plantarflexion) torque peaks at the most negative POS (correlation
-0.90 to -0.93), where the stretched gastrocnemius resists. So `angle_deg = -POS`.
TOR is positive in plantarflexion (≈ +158 N·m at maximal isometric effort) and is kept.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import scipy.io

from muscle_jax.data.readers.frames import Crop


@dataclasses.dataclass(frozen=True)
class Signals:
    """Signals of one trial: `values[name]` sampled at `time_s_S`.

    `frame_samples_F`, when not None, is the explicit alignment: the 0-based sample taken
    with each of the video's F frames.
    """

    source: str
    time_s_S: np.ndarray
    values: dict[str, np.ndarray]
    frame_samples_F: np.ndarray | None = None

    def column(self, name: str) -> np.ndarray:
        """One signal; a declared target that the recording lacks is an error naming the source."""
        if name not in self.values:
            raise KeyError(f"{self.source}: has no signal '{name}' (it has {', '.join(sorted(self.values)) or 'none'})")
        return self.values[name]


def load_mat(path: Path) -> dict:
    """A MAT v5 file as nested Python objects; an error naming the file when it cannot be read."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such MATLAB file")
    try:
        return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (ValueError, OSError, NotImplementedError, TypeError) as error:
        raise ValueError(f"{path}: not a readable MAT v5 file ({error})") from error


def load_mat_struct(path: Path, name: str):
    """The top-level MATLAB struct `name` of a MAT v5 file; an error naming the file when it has none."""
    contents = load_mat(path)
    if name not in contents:
        found = ", ".join(k for k in contents if not k.startswith("__")) or "nothing"
        raise KeyError(f"{path}: has no '{name}' struct (found {found})")
    return contents[name]


def _field(struct, name: str, where: str) -> np.ndarray:
    if not hasattr(struct, name):
        raise KeyError(f"{where}: has no field '{name}'")
    try:
        return np.asarray(getattr(struct, name), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}.{name}: is not numeric ({error})") from error


def read_gasfastrack_signals(mat_path: Path | str) -> dict[str, Signals]:
    """Every clip of a GasFasTrack push-data file, keyed '<condition>_<push>' (the clip's file stem)."""
    mat_path = Path(mat_path)
    clips = load_mat_struct(mat_path, "clips")
    signals = {}
    for condition in clips._fieldnames:
        pushes = getattr(clips, condition)
        for push in pushes._fieldnames:
            where = f"{mat_path}: clips.{condition}.{push}"
            clip = getattr(pushes, push)
            time_s = _field(clip, "time", where)
            position, torque = _field(clip, "POS", where), _field(clip, "TOR", where)
            frame_inds = _field(clip, "frameInds", where)
            for name, array in (("POS", position), ("TOR", torque)):
                if len(array) != len(time_s):
                    raise ValueError(f"{where}.{name}: has {len(array)} samples, time has {len(time_s)}")
            signals[f"{condition}_{push}"] = Signals(
                source=where,
                time_s_S=time_s,
                values={"angle_deg": -position, "torque_nm": torque},
                frame_samples_F=frame_samples_from_1based(frame_inds, len(time_s), f"{where}.frameInds"),
            )
    return signals


def frame_samples_from_1based(frame_inds_F: np.ndarray, num_samples: int, where: str) -> np.ndarray:
    """MATLAB's 1-based frame→sample index as 0-based ints, checked to be whole and in range."""
    if np.any(~np.isfinite(frame_inds_F)) or np.any(frame_inds_F != np.round(frame_inds_F)):
        raise ValueError(f"{where}: holds non-integer or NaN sample indices")
    samples_F = frame_inds_F.astype(np.int64) - 1
    if len(samples_F) and (samples_F.min() < 0 or samples_F.max() >= num_samples):
        raise ValueError(
            f"{where}: indices run {samples_F.min() + 1}..{samples_F.max() + 1}, outside the signal's 1..{num_samples}"
        )
    return samples_F


def read_gasfastrack_calibration(params_path: Path | str) -> tuple[Crop, float]:
    """The image region and pixel size (mm) from a GasFasTrack `*_params.mat` (`Params.imCropRect`, `px2mmX`)."""
    params_path = Path(params_path)
    params = load_mat_struct(params_path, "Params")
    rect = _field(params, "imCropRect", f"{params_path}: Params")
    if len(rect) != 4:
        raise ValueError(f"{params_path}: Params.imCropRect has {len(rect)} values, expected [x y w h]")
    return Crop.from_matlab_rect(rect), float(_field(params, "px2mmX", f"{params_path}: Params")[0])


def read_csv_header(path: Path | str) -> list[str]:
    """The column names of a CSV file's header row; an error naming the file when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    with path.open(newline="") as handle:
        return [name.strip() for name in next(csv.reader(handle), [])]


def read_numeric_csv(path: Path | str, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns of a CSV with a header row, parsed as floats.

    Every name in `required` must be a column. Empty cells and 'nan' read as NaN (the caller
    decides whether the rows it uses may hold them); any other non-numeric cell is an error
    naming the file, the line and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise ValueError(f"{path}: is empty (expected a header row)")
        missing = [name for name in required if name not in header]
        if missing:
            raise KeyError(f"{path}: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: repeats a column name in its header ({', '.join(header)})")
        rows = []
        for line_number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {line_number} has {len(row)} cells, the header has {len(header)}")
            parsed = []
            for name, cell in zip(header, row):
                text = cell.strip()
                try:
                    parsed.append(float(text) if text else np.nan)
                except ValueError:
                    raise ValueError(f"{path}: line {line_number}, column '{name}': {text!r} is not a number") from None
            rows.append(parsed)
    if not rows:
        raise ValueError(f"{path}: has a header but no data rows")
    table_RxC = np.asarray(rows, dtype=np.float64)
    return {name: table_RxC[:, c] for c, name in enumerate(header)}


def check_times(time_s_S: np.ndarray, where: str) -> np.ndarray:
    """Sample times must be finite and strictly increasing; an error naming where they are not."""
    bad = np.flatnonzero(~np.isfinite(time_s_S))
    if len(bad):
        raise ValueError(f"{where}: time_s is NaN or infinite at {len(bad)} row(s), first data row {bad[0] + 1}")
    steps = np.flatnonzero(np.diff(time_s_S) <= 0)
    if len(steps):
        raise ValueError(f"{where}: time_s does not increase at data row {steps[0] + 2}")
    return time_s_S


def read_signal_csv(path: Path | str, required: tuple[str, ...]) -> Signals:
    """A CSV of `time_s` plus one column per signal (header names are the signal names)."""
    path = Path(path)
    columns = read_numeric_csv(path, ("time_s",) + tuple(required))
    time_s = check_times(columns.pop("time_s"), str(path))
    return Signals(str(path), time_s, columns)
