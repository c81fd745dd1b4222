"""A baseline for the state models: ridge regression on the architecture measured from each frame.

The phantom runs already compare the CNN with ridge regression on the phantom's *true*
architecture. A tool such as TimTrack would give a researcher only *measured* architecture;
this baseline regresses the states on what this stage measures from every record's full
frame (fascicle angle, pennation, thickness, fascicle length), fitted on each fold's
training records only, so it asks whether the CNN reads more from the image than that.

Records whose frame the stage could not measure take the fold's training mean of each
feature (so their prediction falls back towards the fold's mean), and are counted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from muscle_jax import evaluate
from muscle_jax.architecture import measure
from muscle_jax.architecture.region import find_clip_region
from muscle_jax.data import recordings
from muscle_jax.data.pipeline import RecordIndex, builder_from_config
from muscle_jax.data.readers.media import read_frames
from muscle_jax.folds import Folds

FEATURES = ("fascicle_angle_deg", "pennation_deg", "thickness_px", "fascicle_length_px")


@dataclasses.dataclass(frozen=True)
class MeasuredArchitecture:
    features_NxA: np.ndarray  # FEATURES per record, NaN where not measured
    found_N: np.ndarray


def _phantom_frames(source, num_records: int, chunk: int) -> Iterator[tuple[np.ndarray, list[np.ndarray], list]]:
    for start in range(0, num_records, chunk):
        records = source.__getitems__(range(start, min(start + chunk, num_records)))
        yield np.arange(start, start + len(records)), [r["frame_image"][..., 0] for r in records], [None] * len(records)


def _recording_frames(layout: str, manual_dir: str | None, index: RecordIndex
                      ) -> Iterator[tuple[np.ndarray, list[np.ndarray], list]]:
    """Each trial's records with their decoded full frames and the trial's image region."""
    for trial in recordings.list_trials(layout, manual_dir or None):
        records = np.nonzero((index.participant_N == trial.participant) & (index.trial_N == trial.trial))[0]
        if len(records) == 0:
            continue
        decoded = read_frames(trial.frames_path)
        position = {int(f): k for k, f in enumerate(decoded.index_N)}
        missing = [int(f) for f in index.frame_N[records] if int(f) not in position]
        if missing:
            raise ValueError(f"{trial.frames_path}: frames {missing[:5]} of the dataset could not be decoded now")
        frames = decoded.images_N[[position[int(f)] for f in index.frame_N[records]]]
        crop = recordings.calibration_crop(trial) or find_clip_region(frames[:: max(1, len(frames) // 64)])
        yield records, list(frames), [crop] * len(records)


def measure_records(dataset_config, source, index: RecordIndex, batch_size: int = 16) -> MeasuredArchitecture:
    """Architecture of every record's full frame: the phantom's `frame_image`, or the frames
    decoded again from a recordings layout (the dataset keeps only the ROI)."""
    num_records = len(index.frame_N)
    features = np.full((num_records, len(FEATURES)), np.nan)
    found = np.zeros(num_records, bool)
    if "frame_image" in source[0]:
        chunks = _phantom_frames(source, num_records, 256)
    else:
        layout = builder_from_config(dataset_config).builder_config.source
        chunks = _recording_frames(layout, dataset_config.get("manual_dir", ""), index)
    config = measure.default_config()
    config.batch_size = batch_size
    # Thousands of frames at ~60 frames/s on a laptop CPU: show the progress.
    with tqdm(total=num_records, desc="architecture baseline", unit="frame", leave=False) as progress:
        for records, frames, crops in chunks:
            for start in range(0, len(records), 256):
                results = measure.measure_frames(frames[start : start + 256], crops[start : start + 256], config)
                rows = records[start : start + 256]
                found[rows] = [r.found for r in results]
                features[rows] = [[getattr(r, name) for name in FEATURES] for r in results]
                progress.update(len(rows))
    return MeasuredArchitecture(features, found)


def ridge_on_measured(measured: MeasuredArchitecture, targets_NxT: np.ndarray, folds: Folds, alpha: float) -> np.ndarray:
    """Held-out predictions of ridge regression on the measured architecture, fold by fold;
    a record not measured takes the fold's training mean of each feature. A fold none of whose
    training records could be measured has no such baseline: its predictions stay NaN (its
    metrics are reported as undefined) and a warning says so."""
    predictions_NxT = np.full_like(targets_NxT, np.nan)
    for k in range(folds.num_folds):
        train_N, test_N = folds.train_KxN[k], folds.test_KxN[k]
        usable = train_N & measured.found_N
        if not usable.any():
            logging.warning("fold %d: the architecture stage measured none of its training records; "
                            "no ridge-on-measured-architecture baseline for it", k)
            continue
        filled = np.where(np.isfinite(measured.features_NxA), measured.features_NxA,
                          np.nanmean(measured.features_NxA[usable], axis=0))
        one_fold = Folds(train_KxN=usable[None], test_KxN=test_N[None], held_out_groups=(folds.held_out_groups[k],),
                         group_by=folds.group_by)
        predictions_NxT[test_N] = evaluate.ridge_predictor(filled, targets_NxT, one_fold, alpha)[test_N]
    return predictions_NxT


def write_features_csv(path: Path, index: RecordIndex, measured: MeasuredArchitecture) -> None:
    """One row per record: participant, trial, frame, found and the measured features."""
    lines = [",".join(("participant", "trial", "frame", "found", *FEATURES))]
    for n in range(len(index.frame_N)):
        values = ",".join("" if not np.isfinite(v) else f"{v:.6g}" for v in measured.features_NxA[n])
        lines.append(f"{index.participant_N[n]},{index.trial_N[n]},{index.frame_N[n]},{bool(measured.found_N[n])},{values}")
    path.write_text("\n".join(lines) + "\n")
