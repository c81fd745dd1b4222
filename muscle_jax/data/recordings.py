"""Real recordings on disk → trials of ROI frames with the signals taken with them.

Two layouts (the `ultrasound_states` builder's real-data configs):

* `gasfastrack`: the GasFasTrack release as published (`clips/AGR003_push_data.mat`,
  `clips/<condition>_<push>.mp4`, `p6_params.mat`); one participant, 24 trials, angle and
  torque, frames aligned by the file's own `frameInds`.
* `recordings`: users' own data, `<manual_dir>/<participant>/<trial>.<mp4|avi|dcm|folder>`
  next to `<trial>.csv` (`time_s` plus one column per signal); see docs/recordings.md.

`iter_trials` yields one dict per trial with exactly one entry per decoded frame, in order.
A frame that cannot be used (undecodable, no ROI found, a NaN or out-of-range signal) is an
error naming the file and the problem, or, with `skip_bad_frames`, left out and counted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from muscle_jax.data.readers import align, emg
from muscle_jax.data.readers.dicom import read_dicom_region
from muscle_jax.data.readers.frames import Crop, DecodedFrames, detect_image_region, resize
from muscle_jax.data.readers.media import DICOM_SUFFIXES, is_frame_source, read_frames
from muscle_jax.data.readers.signals import (
    Signals,
    read_csv_header,
    read_gasfastrack_calibration,
    read_gasfastrack_signals,
    read_numeric_csv,
    read_signal_csv,
)
from muscle_jax.segmentation import segment_frames

GASFASTRACK_TARGETS = ("angle_deg", "torque_nm")
ALL_TARGETS = ("angle_deg", "torque_nm", "emg_v")
LAYOUTS = ("gasfastrack", "recordings")
ROI_SOURCES = ("calibration", "segmentation")
# ../shared/data relative to the repository root, where the project keeps real data.
SHARED_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_MANUAL_DIRS = {"gasfastrack": SHARED_DATA_DIR / "gasfastrack"}
RAW_EMG_COLUMN = "emg_raw_v"
CALIBRATION_FILE = "calibration.json"
_FRAMES_SUFFIX = ".frames.csv"
# Frames handed to the segmentation stage at once (full-resolution crops are large).
_SEGMENTATION_CHUNK = 64

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrialRef:
    """Where one trial's files are; listing these decodes nothing."""

    layout: str
    participant: int
    trial: int
    name: str
    frames_path: Path
    signals_path: Path
    participant_dir: Path | None = None
    alignment_path: Path | None = None


# ---------------------------------------------------------------------------- listing


def list_trials(layout: str, manual_dir: Path | str | None = None) -> list[TrialRef]:
    """The trials of a layout in order (participants, then trials, by name); cheap: no decoding.

    Errors name the file or folder when the layout is incomplete: a clip without signals,
    signals without a clip, a participant folder with no trials.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown recordings layout {layout!r}; expected one of {LAYOUTS}")
    manual_dir = Path(manual_dir) if manual_dir else DEFAULT_MANUAL_DIRS.get(layout)
    if manual_dir is None:
        raise ValueError(f"layout {layout!r} has no default manual_dir: pass the folder of your recordings")
    if not manual_dir.is_dir():
        raise FileNotFoundError(f"{manual_dir}: no such folder for the {layout!r} recordings layout")
    return _list_gasfastrack(manual_dir) if layout == "gasfastrack" else _list_recordings(manual_dir)


def _gasfastrack_paths(manual_dir: Path) -> tuple[Path, Path]:
    clips_dir = manual_dir / "clips"
    mats = sorted(clips_dir.glob("*_push_data.mat"))
    if len(mats) != 1:
        raise FileNotFoundError(f"{clips_dir}: expected one '*_push_data.mat' signals file, found {len(mats)}")
    return mats[0], manual_dir / "p6_params.mat"


def _list_gasfastrack(manual_dir: Path) -> list[TrialRef]:
    mat_path, _ = _gasfastrack_paths(manual_dir)
    names = sorted(read_gasfastrack_signals(mat_path))
    clip_paths = {p.stem: p for p in (manual_dir / "clips").glob("*.mp4")}
    missing = [n for n in names if n not in clip_paths]
    if missing:
        raise FileNotFoundError(f"{manual_dir / 'clips'}: no video for {', '.join(n + '.mp4' for n in missing)} listed in {mat_path.name}")
    orphans = sorted(set(clip_paths) - set(names))
    if orphans:
        raise ValueError(f"{mat_path}: has no signals for the video(s) {', '.join(o + '.mp4' for o in orphans)}")
    participants = sorted({n.split("_")[0] for n in names})
    trials = []
    for name in names:
        participant = participants.index(name.split("_")[0])
        trial = sum(1 for t in trials if t.participant == participant)
        trials.append(TrialRef("gasfastrack", participant, trial, name, clip_paths[name], mat_path, manual_dir))
    return trials


def _list_recordings(manual_dir: Path) -> list[TrialRef]:
    stray = [p.name for p in manual_dir.iterdir() if p.is_file() and is_frame_source(p)]
    if stray:
        raise ValueError(f"{manual_dir}: recordings belong in participant folders, found {', '.join(sorted(stray))} at the top")
    participant_dirs = sorted(p for p in manual_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not participant_dirs:
        raise ValueError(f"{manual_dir}: holds no participant folders (<participant>/<trial>.mp4 + <trial>.csv)")
    trials = []
    for participant, participant_dir in enumerate(participant_dirs):
        entries = [p for p in participant_dir.iterdir() if not p.name.startswith(".")]
        sources = sorted(p for p in entries if is_frame_source(p))
        csv_stems = {p.name[: -len(".csv")] for p in entries if p.name.endswith(".csv") and not p.name.endswith(_FRAMES_SUFFIX)}
        if not sources:
            raise ValueError(f"{participant_dir}: participant folder has no trials (expected <trial>.mp4|.avi|.dcm or an image folder, with <trial>.csv)")
        stems = [p.stem if p.is_file() else p.name for p in sources]
        if len(set(stems)) != len(stems):
            raise ValueError(f"{participant_dir}: two frame sources share a trial name ({', '.join(p.name for p in sources)})")
        for stem, source in zip(stems, sources):
            if stem not in csv_stems:
                raise FileNotFoundError(f"{participant_dir / (stem + '.csv')}: no signals for the trial {source.name}")
        orphans = sorted(csv_stems - set(stems))
        if orphans:
            raise ValueError(f"{participant_dir}: signals without a recording: {', '.join(o + '.csv' for o in orphans)}")
        for trial, (stem, source) in enumerate(zip(stems, sources)):
            alignment = participant_dir / (stem + _FRAMES_SUFFIX)
            trials.append(
                TrialRef(
                    "recordings",
                    participant,
                    trial,
                    f"{participant_dir.name}_{stem}",
                    source,
                    participant_dir / (stem + ".csv"),
                    participant_dir,
                    alignment if alignment.is_file() else None,
                )
            )
    return trials


def available_targets(layout: str, manual_dir: Path | str | None = None) -> tuple[str, ...]:
    """The targets every trial of a layout records (in `ALL_TARGETS` order), from file headers only.

    For the `recordings` layout a raw EMG column (`emg_raw_v`) provides `emg_v`. A dataset
    built from the layout should declare exactly these: a target one trial lacks cannot be
    learned for it, and is never filled in.
    """
    trials = list_trials(layout, manual_dir)
    if layout == "gasfastrack":
        return GASFASTRACK_TARGETS
    common = set(ALL_TARGETS)
    for trial in trials:
        header = set(read_csv_header(trial.signals_path))
        if RAW_EMG_COLUMN in header:
            header.add("emg_v")
        common &= header
    return tuple(t for t in ALL_TARGETS if t in common)


# ---------------------------------------------------------------------------- frames → ROIs


@dataclasses.dataclass(frozen=True)
class RoiFrames:
    """ROIs of a frame source: `frames.images_N` is N x roi_h x roi_w uint8; `found_N` false where
    the segmentation stage found no muscle (its reason in `reasons`)."""

    frames: DecodedFrames
    found_N: np.ndarray
    reasons: tuple[str, ...]
    crop: Crop


def layout_calibration(layout: str, manual_dir: Path | str | None) -> Crop | None:
    """The image region a layout records for all its trials: GasFasTrack's params file, or a
    `calibration.json` at the top of a `recordings` folder; None when there is none."""
    manual_dir = Path(manual_dir) if manual_dir else DEFAULT_MANUAL_DIRS.get(layout)
    if manual_dir is None:
        return None
    if layout == "gasfastrack":
        return read_gasfastrack_calibration(_gasfastrack_paths(manual_dir)[1])[0]
    return read_calibration_json(manual_dir / CALIBRATION_FILE)


def calibration_crop(trial: TrialRef) -> Crop | None:
    """The image region of one trial: the participant folder's `calibration.json`, else the
    layout's (`layout_calibration`), else a DICOM's ultrasound regions; None when none is recorded."""
    if trial.layout == "recordings":
        crop = read_calibration_json(trial.participant_dir / CALIBRATION_FILE)
        if crop is not None:
            return crop
    root = trial.participant_dir if trial.layout == "gasfastrack" else trial.participant_dir.parent
    crop = layout_calibration(trial.layout, root)
    if crop is None and trial.frames_path.suffix.lower() in DICOM_SUFFIXES:
        return read_dicom_region(trial.frames_path)
    return crop


def read_calibration_json(path: Path) -> Crop | None:
    """`{"crop_xywh": [x, y, w, h]}` (0-based pixels) from `path`, or None when there is no such file."""
    if not path.is_file():
        return None
    try:
        crop_xywh = json.loads(path.read_text())["crop_xywh"]
        return Crop(*(int(v) for v in crop_xywh))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f'{path}: expected {{"crop_xywh": [x, y, w, h]}} with 0-based pixels ({error})') from error


def region_transform(crop: Crop, roi_hw: tuple[int, int], roi_source: str, source: Path | str) -> Callable[[np.ndarray], np.ndarray]:
    """What is kept of each decoded grayscale frame: for 'calibration' the ROI itself (the image
    region resized to `roi_hw`); for 'segmentation' the full-resolution image region, which
    `segment_regions` turns into ROIs. Errors name `source` when the crop does not fit the frame."""
    if roi_source not in ROI_SOURCES:
        raise ValueError(f"roi_source must be one of {ROI_SOURCES}, got {roi_source!r}")
    roi_hw = (int(roi_hw[0]), int(roi_hw[1]))
    # Calibration ROIs are small from the start; segmentation needs the full-resolution region.
    if roi_source == "calibration":
        return lambda frame_HxW: resize(crop.apply(frame_HxW, source), roi_hw)
    return lambda frame_HxW: crop.apply(frame_HxW, source)


@dataclasses.dataclass(frozen=True)
class SegmentedRois:
    """What the segmentation stage gives for N image regions: ROIs h×w (zeros where no muscle was
    found, with the reason), and the aponeurosis curves in region pixels (`row = np.polyval(coeffs,
    column)` over `column_range_Nx2`; NaN where not found)."""

    rois_NxhxW: np.ndarray
    found_N: np.ndarray
    reasons: tuple[str, ...]
    superficial_coeffs_NxD: np.ndarray
    deep_coeffs_NxD: np.ndarray
    column_range_Nx2: np.ndarray


def segment_regions(regions_NxHxW: np.ndarray, roi_hw: tuple[int, int]) -> SegmentedRois:
    """The segmentation stage over same-size image regions, a chunk at a time (its full-size
    masks are not kept)."""
    chunks = [
        segment_frames(np.ascontiguousarray(regions_NxHxW[start : start + _SEGMENTATION_CHUNK]), roi_hw)
        for start in range(0, len(regions_NxHxW), _SEGMENTATION_CHUNK)
    ]
    return SegmentedRois(
        np.concatenate([np.asarray(c.rois_NxhxW, dtype=np.uint8) for c in chunks]),
        np.concatenate([np.asarray(c.found_N, dtype=bool) for c in chunks]),
        tuple(str(r) for c in chunks for r in c.reasons),
        np.concatenate([c.superficial_coeffs_NxD for c in chunks]),
        np.concatenate([c.deep_coeffs_NxD for c in chunks]),
        np.concatenate([c.column_range_Nx2 for c in chunks]),
    )


def read_rois(
    source: Path,
    roi_hw: tuple[int, int],
    roi_source: str,
    crop: Crop | None,
    fps: float | None = None,
    skip_bad_frames: bool = False,
) -> RoiFrames:
    """Decodes `source`, crops it to the image region (`crop`, or detected from the frames when
    None) and makes each frame's ROI: 'calibration' resizes the region to `roi_hw`;
    'segmentation' hands it to `muscle_jax.segmentation.segment_frames` (`region_transform`,
    `segment_regions`: the per-frame steps that `muscle_jax.live` applies to a live feed)."""
    if roi_source not in ROI_SOURCES:
        raise ValueError(f"roi_source must be one of {ROI_SOURCES}, got {roi_source!r}")
    roi_hw = (int(roi_hw[0]), int(roi_hw[1]))
    if crop is None:
        full = read_frames(source, fps=fps, skip_bad_frames=skip_bad_frames)
        crop = detect_image_region(full.images_N)
        log.info("%s: detected image region x=%d y=%d w=%d h=%d", source, crop.x, crop.y, crop.w, crop.h)
        prepare = region_transform(crop, roi_hw, roi_source, source)
        decoded = dataclasses.replace(full, images_N=np.stack([prepare(f) for f in full.images_N]))
    else:
        decoded = read_frames(source, region_transform(crop, roi_hw, roi_source, source), fps, skip_bad_frames)
    if roi_source == "calibration":
        return RoiFrames(decoded, np.ones(len(decoded.index_N), bool), ("",) * len(decoded.index_N), crop)
    segmented = segment_regions(decoded.images_N, roi_hw)
    return RoiFrames(dataclasses.replace(decoded, images_N=segmented.rois_NxhxW), segmented.found_N, segmented.reasons, crop)


# ---------------------------------------------------------------------------- signals → frames


def trial_signals(trial: TrialRef, targets: tuple[str, ...], emg_settings: dict | None) -> Signals:
    """The signals recorded with a trial (`targets` only; raw EMG conditioned into `emg_v`)."""
    if trial.layout == "gasfastrack":
        return read_gasfastrack_signals(trial.signals_path)[trial.name]
    header = read_csv_header(trial.signals_path)
    # Raw EMG is conditioned here only when the file has no envelope of its own.
    needs_raw_emg = "emg_v" in targets and "emg_v" not in header and RAW_EMG_COLUMN in header
    wanted = tuple(t for t in targets if not (t == "emg_v" and needs_raw_emg)) + ((RAW_EMG_COLUMN,) if needs_raw_emg else ())
    signals = read_signal_csv(trial.signals_path, wanted)
    if not needs_raw_emg:
        return signals
    where = f"{trial.signals_path}: column '{RAW_EMG_COLUMN}'"
    rate_hz = emg.sampling_rate_hz(signals.time_s_S, where)
    envelope = emg.emg_envelope(signals.values[RAW_EMG_COLUMN], rate_hz, emg_settings, where)
    return dataclasses.replace(signals, values={**signals.values, "emg_v": envelope})


def frame_positions(trial: TrialRef, signals: Signals, frames: DecodedFrames) -> np.ndarray:
    """Fractional signal sample of each decoded frame: by explicit index when the trial has one,
    else by the frames' timestamps."""
    if signals.frame_samples_F is not None:
        return align.positions_from_index(
            signals.frame_samples_F, frames.index_N, frames.declared, str(trial.frames_path), f"{signals.source}.frameInds"
        )
    if trial.alignment_path is not None:
        columns = read_numeric_csv(trial.alignment_path, ("frame",))
        frame_column = columns["frame"]
        if not np.array_equal(frame_column, np.arange(len(frame_column))):
            raise ValueError(f"{trial.alignment_path}: column 'frame' must list 0, 1, 2, … one row per video frame")
        if "sample" in columns:
            samples_F = columns["sample"]
            if np.any(~np.isfinite(samples_F)) or np.any(samples_F != np.round(samples_F)) or np.any(samples_F < 0) or np.any(samples_F >= len(signals.time_s_S)):
                raise ValueError(
                    f"{trial.alignment_path}: column 'sample' must hold whole 0-based rows of {trial.signals_path.name} "
                    f"(0..{len(signals.time_s_S) - 1})"
                )
            return align.positions_from_index(
                samples_F.astype(np.int64), frames.index_N, frames.declared, str(trial.frames_path), str(trial.alignment_path)
            )
        if "time_s" not in columns:
            raise KeyError(f"{trial.alignment_path}: needs a 'sample' or a 'time_s' column next to 'frame'")
        if len(frame_column) != frames.declared:
            raise ValueError(
                f"{trial.frames_path}: has {frames.declared} frames but {trial.alignment_path} lists {len(frame_column)}; "
                "frame count and frame times disagree"
            )
        return align.positions_from_times(columns["time_s"][frames.index_N], signals.time_s_S,
                                          str(trial.alignment_path), signals.source)
    if np.any(~np.isfinite(frames.time_s_N)):
        raise ValueError(
            f"{trial.frames_path}: has no frame timestamps; add {trial.frames_path.stem}{_FRAMES_SUFFIX} "
            "with 'frame' and 'time_s' (or 'sample') columns"
        )
    return align.positions_from_times(frames.time_s_N, signals.time_s_S, str(trial.frames_path), signals.source)


def _describe_bad(frame_N: np.ndarray, bad_N: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(f)) for f in frame_N[bad_N][:limit])
    return f"{int(bad_N.sum())} frame(s) ({shown}{', …' if bad_N.sum() > limit else ''})"


# ---------------------------------------------------------------------------- trials


def load_trial(
    trial: TrialRef,
    roi_hw: tuple[int, int],
    roi_source: str,
    targets: tuple[str, ...],
    emg_settings: dict | None = None,
    skip_bad_frames: bool = False,
) -> dict:
    """One trial as the builder's dict (see `iter_trials`)."""
    unknown = [t for t in targets if t not in ALL_TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {unknown}; expected names from {ALL_TARGETS}")
    signals = trial_signals(trial, targets, emg_settings)
    values = {t: signals.column(t) for t in targets}  # a declared target the recording lacks fails here
    rois = read_rois(trial.frames_path, roi_hw, roi_source, calibration_crop(trial), skip_bad_frames=skip_bad_frames)
    frames = rois.frames.require_complete(skip_bad_frames)
    positions_N = frame_positions(trial, signals, frames)
    at_frames = {t: align.values_at(v, positions_N) for t, v in values.items()}
    problems, bad_N = [], np.zeros(len(frames.index_N), bool)
    if not rois.found_N.all():
        first_reason = rois.reasons[int(np.argmin(rois.found_N))]
        problems.append(f"no ROI found by the segmentation stage in {_describe_bad(frames.index_N, ~rois.found_N)}: {first_reason}")
        bad_N |= ~rois.found_N
    outside_N = ~np.isfinite(positions_N)
    if outside_N.any():
        problems.append(f"{_describe_bad(frames.index_N, outside_N)} lie outside the time span of {signals.source}")
        bad_N |= outside_N
    for target, values_N in at_frames.items():
        nan_N = ~np.isfinite(values_N) & ~outside_N
        if nan_N.any():
            problems.append(f"signal '{target}' in {signals.source} is NaN at {_describe_bad(frames.index_N, nan_N)}")
            bad_N |= nan_N
    if problems and not skip_bad_frames:
        raise ValueError(f"{trial.frames_path}: " + "; ".join(problems) + " (set skip_bad_frames to leave them out, counted)")
    skipped = frames.missing + int(bad_N.sum())
    if skipped:
        log.warning(
            "%s: skipped %d of %d frames (%d undecodable; %s)",
            trial.frames_path, skipped, frames.declared, frames.missing, "; ".join(problems) or "no other problem",
        )
    keep_N = ~bad_N
    example = {
        "image": frames.images_N[keep_N][..., None].astype(np.uint8),
        "time_s": frames.time_s_N[keep_N].astype(np.float32),
        "frame": frames.index_N[keep_N].astype(np.int32),
        "participant": trial.participant,
        "trial": trial.trial,
        "name": trial.name,
        "skipped_frames": skipped,
    }
    example.update({t: v[keep_N].astype(np.float32) for t, v in at_frames.items()})
    return example


def iter_trials(
    layout: str,
    manual_dir: Path | str | None,
    roi_hw: tuple[int, int],
    roi_source: str,
    targets: tuple[str, ...],
    emg: dict | None = None,
    skip_bad_frames: bool = False,
) -> Iterator[dict]:
    """Every trial of a layout as a dict, one entry per decoded (and kept) frame in order.

    Keys: `image` uint8 [T, roi_h, roi_w, 1]; one float32 [T] per name in `targets`;
    `time_s` float32 [T] (from the trial's first frame); `frame` int32 [T] (frame number in
    the source); `participant`, `trial` ints; `name` str; `skipped_frames` int (0 unless
    `skip_bad_frames` left frames out; each skip is also logged). `emg` holds the EMG
    conditioning settings (`muscle_jax.data.readers.emg.DEFAULT_EMG` keys).
    """
    for trial in list_trials(layout, manual_dir):
        yield load_trial(trial, roi_hw, roi_source, tuple(targets), emg, skip_bad_frames)
