"""Input pipeline: tfds `ultrasound_states` → grain → per-fold batches [K, B, ...].

Nothing here looks at a fold's held-out records when preparing that fold's training data:
each fold's batches are drawn from its training indices only, and its label statistics
(mean, sd) come from those same records. Batches are a pure function of the step (grain's
MapDataset is random-access), so a resumed run reads exactly what an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from muscle_jax.data import identity, recordings, ultrasound_states
from muscle_jax.data.readers import emg
from muscle_jax.segmentation.network import SHIPPED_CHECKPOINT

SPLIT = "full"
_INDEX_CHUNK = 512


def builder_from_config(dataset_config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
    """The `ultrasound_states` builder a config names, with the config's variations applied.

    Phantom configs take `phantom_overrides`; real-recording layouts take the run's `targets`
    (what the dataset stores is what the model predicts), EMG conditioning (`emg`) and the
    recordings folder (`manual_dir`); both take `roi_hw`, `roi_source` and `skip_bad_frames`.
    The builder config's name is the base name + a digest of the dataset's identity (its
    settings, the code that makes its records and, for recordings, the folder and its files;
    `data/identity.py`), so a changed input never reuses or overwrites another build.
    """
    if dataset_config.name != "ultrasound_states":
        raise ValueError(f"dataset.name must be 'ultrasound_states', got {dataset_config.name!r}")
    known = {c.name: c for c in ultrasound_states.UltrasoundStates.BUILDER_CONFIGS}
    name = dataset_config.builder_config
    if name not in known:
        raise ValueError(f"dataset.builder_config {name!r} is not one of {sorted(known)}")
    base = known[name]
    variation: dict[str, Any] = {}
    phantom_overrides = dataset_config.phantom_overrides.to_dict() if dataset_config.phantom_overrides else {}
    roi_source = dataset_config.get("roi_source", "")
    if roi_source and roi_source != base.roi_source:
        variation["roi_source"] = roi_source
    if (roi_source or base.roi_source) == "segmentation":
        # The ROIs depend on the shipped U-Net's weights: a retrained model is another dataset.
        variation["segmentation_model"] = shipped_segmentation_digest()
    if dataset_config.get("skip_bad_frames", False):
        variation["skip_bad_frames"] = True
    if base.source == "phantom":
        if roi_source and roi_source not in ultrasound_states.PHANTOM_ROI_SOURCES:
            raise ValueError(f"dataset.roi_source for a phantom must be one of {ultrasound_states.PHANTOM_ROI_SOURCES}, "
                             f"got {roi_source!r}")
        roi_hw = tuple(dataset_config.get("roi_hw", ()))
        if roi_hw:  # the one ROI-size knob for every source; for a phantom it is a preset field
            if tuple(phantom_overrides.get("roi_hw", roi_hw)) != roi_hw:
                raise ValueError(f"dataset.roi_hw {roi_hw} contradicts dataset.phantom_overrides.roi_hw "
                                 f"{tuple(phantom_overrides['roi_hw'])}; set one of them")
            if roi_hw != tuple(ultrasound_states.phantom_config_of(base).roi_hw):
                phantom_overrides = {**phantom_overrides, "roi_hw": roi_hw}
        if phantom_overrides:
            variation["phantom_overrides"] = {k: tuple(v) if isinstance(v, list) else v for k, v in phantom_overrides.items()}
    else:
        if phantom_overrides:
            raise ValueError(f"dataset.phantom_overrides applies to phantom builder configs, not {name!r}")
        if tuple(dataset_config.targets) != tuple(base.targets):
            variation["targets"] = tuple(dataset_config.targets)
        roi_hw = tuple(dataset_config.get("roi_hw", ()) or base.roi_hw)
        if roi_hw != tuple(base.roi_hw):
            variation["roi_hw"] = roi_hw
        emg_settings = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in dataset_config.emg.items()}
        if emg_settings != {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in emg.DEFAULT_EMG.items()}:
            variation["emg"] = emg_settings
    resolved = dataclasses.replace(base, **variation)
    fields = {
        "builder_config": name, "source": resolved.source, "roi_source": resolved.roi_source,
        "skip_bad_frames": resolved.skip_bad_frames, "segmentation_model": resolved.segmentation_model,
    }
    if base.source == "phantom":
        fields["phantom"] = dataclasses.asdict(ultrasound_states.phantom_config_of(resolved))
    else:
        fields.update(roi_hw=list(resolved.roi_hw), targets=list(resolved.targets), emg=resolved.emg or emg.DEFAULT_EMG)
    manual_dir = None
    if base.source != "phantom":
        folder = dataset_config.manual_dir or default_manual_dir(base.source)
        if not folder:
            raise ValueError(f"config field dataset.manual_dir is empty; the {name!r} layout needs the folder of the recordings")
        manual_dir = Path(folder)
    dataset_identity = identity.identity(fields, manual_dir)
    builder_config = dataclasses.replace(resolved, name=f"{name}_{identity.digest(dataset_identity)}")
    data_dir = str(Path(dataset_config.data_dir).expanduser().resolve())
    builder = ultrasound_states.UltrasoundStates(config=builder_config, data_dir=data_dir, file_format="array_record")
    builder.identity = dataset_identity
    return builder


@functools.cache
def shipped_segmentation_digest() -> str:
    """A short digest of the shipped segmentation checkpoint's bytes."""
    return hashlib.sha1(SHIPPED_CHECKPOINT.read_bytes()).hexdigest()[:12]


def default_manual_dir(source: str) -> str | None:
    """Where a real-recording layout's files are when the config names no manual dir."""
    if source == "phantom":
        return None
    directory = recordings.DEFAULT_MANUAL_DIRS.get(source)
    return str(directory) if directory else None


def explain_rebuild(builder: tfds.core.DatasetBuilder) -> str:
    """Why a dataset is built: what differs from the other builds of the same builder config."""
    base = builder.builder_config.name.rsplit("_", 1)[0]
    others = []
    for directory in sorted(Path(builder.data_dir).parents[1].glob(f"{base}_*/*")):
        recorded = identity.read(directory)
        if recorded is not None and directory != Path(builder.data_dir):
            others.append((directory, identity.differences(recorded, builder.identity)))
    if not others:
        return f"no earlier build of {base} in {Path(builder.data_dir).parents[1]}"
    directory, changes = min(others, key=lambda other: len(other[1]))
    return f"the built {directory.parent.name} differs: " + "; ".join(changes)


def load_source(dataset_config: ml_collections.ConfigDict):
    """Builds the dataset unless a build of exactly its inputs exists (logging why it builds),
    and returns its random-access `full` split."""
    builder = builder_from_config(dataset_config)
    if not Path(builder.data_dir).exists():
        logging.info("building dataset %s: %s", builder.info.full_name, explain_rebuild(builder))
    manual_dir = dataset_config.manual_dir or default_manual_dir(builder.builder_config.source)
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    builder.download_and_prepare(download_config=download_config)
    if identity.read(Path(builder.data_dir)) is None:
        identity.write(Path(builder.data_dir), builder.identity)
    return builder.as_data_source(split=SPLIT), builder.info


@dataclasses.dataclass(frozen=True)
class RecordIndex:
    """Everything but the images, for every record of the source, in record order."""

    participant_N: np.ndarray
    trial_N: np.ndarray
    frame_N: np.ndarray
    time_s_N: np.ndarray
    targets_NxT: np.ndarray
    target_names: tuple[str, ...]
    architecture_NxA: np.ndarray | None
    architecture_names: tuple[str, ...]

    @functools.cached_property
    def previous_N(self) -> np.ndarray:
        """The record before each record in its (participant, trial), by frame; itself at a
        trial's first record."""
        order = np.lexsort((self.frame_N, self.trial_N, self.participant_N))
        same_trial = (np.diff(self.participant_N[order]) == 0) & (np.diff(self.trial_N[order]) == 0)
        previous_N = np.arange(len(order))
        previous_N[order[1:]] = np.where(same_trial, order[:-1], order[1:])
        return previous_N

    def groups(self, group_by: str) -> np.ndarray:
        """Group id per record: the participant, or (participant, trial) flattened to one id."""
        if group_by == "participant":
            return self.participant_N
        if group_by == "trial":
            return self.participant_N.astype(np.int64) * 100_000 + self.trial_N
        raise ValueError(f"folds.group_by must be 'participant' or 'trial', got {group_by!r}")


def read_index(source, target_names: Sequence[str], architecture_names: Sequence[str] = ()) -> RecordIndex:
    """Reads the labels and ids of every record (one pass; images are read but not kept)."""
    num_records = len(source)
    if num_records == 0:
        raise ValueError("the dataset has no records")
    first = source[0]
    missing = [name for name in target_names if name not in first]
    if missing:
        raise ValueError(f"dataset.targets {missing} are not features of this dataset (it has {sorted(first)})")
    architecture_names = tuple(name for name in architecture_names if name in first)
    scalars = ("participant", "trial", "frame", "time_s", *target_names, *architecture_names)
    columns = {name: np.empty(num_records, np.float64) for name in scalars}
    for start in range(0, num_records, _INDEX_CHUNK):
        records = source.__getitems__(range(start, min(start + _INDEX_CHUNK, num_records)))
        for name in scalars:
            columns[name][start : start + len(records)] = [r[name] for r in records]
    targets_NxT = np.stack([columns[n] for n in target_names], axis=1).astype(np.float32)
    if not np.all(np.isfinite(targets_NxT)):
        bad = int(np.argmax(~np.all(np.isfinite(targets_NxT), axis=1)))
        raise ValueError(f"record {bad} (participant {int(columns['participant'][bad])}) has a non-finite target")
    architecture = (
        np.stack([columns[n] for n in architecture_names], axis=1).astype(np.float32) if architecture_names else None
    )
    return RecordIndex(
        participant_N=columns["participant"].astype(np.int32),
        trial_N=columns["trial"].astype(np.int32),
        frame_N=columns["frame"].astype(np.int32),
        time_s_N=columns["time_s"].astype(np.float32),
        targets_NxT=targets_NxT,
        target_names=tuple(target_names),
        architecture_NxA=architecture,
        architecture_names=architecture_names,
    )


@dataclasses.dataclass(frozen=True)
class LabelStats:
    """Per-fold label standardisation, from each fold's training records only."""

    mean_KxT: np.ndarray
    std_KxT: np.ndarray

    def to_json(self) -> dict[str, list]:
        return {"mean_KxT": self.mean_KxT.tolist(), "std_KxT": self.std_KxT.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, list]) -> "LabelStats":
        return cls(np.asarray(data["mean_KxT"], np.float32), np.asarray(data["std_KxT"], np.float32))


def label_stats(targets_NxT: np.ndarray, train_KxN: np.ndarray) -> LabelStats:
    """Mean and sd of each target over each fold's training records (sd floored to avoid /0)."""
    means, stds = [], []
    for train_N in train_KxN:
        if not train_N.any():
            raise ValueError("a fold has no training records")
        means.append(targets_NxT[train_N].mean(axis=0))
        stds.append(np.maximum(targets_NxT[train_N].std(axis=0), 1e-6))
    return LabelStats(np.stack(means).astype(np.float32), np.stack(stds).astype(np.float32))


def read_images(source, indices: np.ndarray) -> np.ndarray:
    """The uint8 ROI images of the given records, in the shape of `indices` + (H, W, 1)."""
    records = source.__getitems__(indices.ravel().tolist())
    images = np.stack([r["image"] for r in records])
    return images.reshape(indices.shape + images.shape[1:])


def stack_indices(previous_N: np.ndarray, indices: np.ndarray, frame_stack: int) -> np.ndarray:
    """`indices` + (S,): each record preceded by the S − 1 records before it, earliest first,
    following `previous_N` (which stops at a trial's first record, so a stack never crosses
    into another trial or participant)."""
    if frame_stack < 1:
        raise ValueError(f"dataset.frame_stack must be >= 1, got {frame_stack}")
    stacked = [np.asarray(indices)]
    for _ in range(frame_stack - 1):
        stacked.insert(0, previous_N[stacked[0]])
    return np.stack(stacked, axis=-1)


def read_model_inputs(source, index: RecordIndex, indices: np.ndarray, frame_stack: int) -> np.ndarray:
    """The model's uint8 inputs for the given records, `indices` + (H, W, S): channel s is the
    frame S − 1 − s records earlier in the same trial (S = `frame_stack`; 1 = the frame alone)."""
    if frame_stack == 1:
        return read_images(source, indices)
    images = read_images(source, stack_indices(index.previous_N, indices, frame_stack))  # ... × S × H × W × 1
    return np.moveaxis(images[..., 0], -3, -1)


def stack_sequence(frames_NxHxWx1: np.ndarray, frame_stack: int) -> np.ndarray:
    """Model inputs N×H×W×S from one recording's consecutive frames, by the rule of
    `read_model_inputs` (the first frame repeats where there is no earlier one)."""
    previous_N = np.maximum(np.arange(len(frames_NxHxWx1)) - 1, 0)
    stacked = frames_NxHxWx1[stack_indices(previous_N, np.arange(len(frames_NxHxWx1)), frame_stack)]
    return np.moveaxis(stacked[..., 0], 1, -1)


def train_batches(
    source,
    index: RecordIndex,
    train_KxN: np.ndarray,
    stats: LabelStats,
    batch_size: int,
    seed: int,
    start_step: int,
    num_steps: int,
    num_threads: int = 2,
    frame_stack: int = 1,
    rows: tuple[slice, slice] = (slice(None), slice(None)),
) -> Iterator[dict[str, np.ndarray]]:
    """Batches for steps [start_step, num_steps): `image` uint8 [K, B, H, W, S] (S =
    `frame_stack`, see `read_model_inputs`), `targets` float32 [K, B, T] standardised with each
    fold's training statistics.

    Each fold shuffles its own training indices (reshuffled every epoch) with a seed that depends
    only on (seed, fold), so a fold's data never depends on another fold's held-out group.
    `rows` (folds, examples) keeps only that block of every batch, and only its records are
    read: a process of a multi-process job reads the block its devices hold
    (`sharding.process_batch_rows`), the same rows the whole batch has there.
    """
    per_fold = [
        grain.MapDataset.source(np.flatnonzero(train_N)).shuffle(seed=seed * 7919 + k).repeat().batch(batch_size)
        for k, train_N in enumerate(train_KxN)
    ]

    fold_rows, example_rows = rows
    fold_numbers = range(len(per_fold))[fold_rows]
    mean_KxT, std_KxT = stats.mean_KxT[fold_rows], stats.std_KxT[fold_rows]

    def load(step: int) -> dict[str, np.ndarray]:
        indices_KxB = np.stack([per_fold[k][step][example_rows] for k in fold_numbers])
        targets_KxBxT = index.targets_NxT[indices_KxB]
        targets_KxBxT = (targets_KxBxT - mean_KxT[:, None, :]) / std_KxT[:, None, :]
        images = read_model_inputs(source, index, indices_KxB, frame_stack)
        return {"image": images, "targets": targets_KxBxT.astype(np.float32)}

    steps = grain.MapDataset.range(start_step, num_steps).map(load)
    read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2, 2 * num_threads))
    return iter(steps.to_iter_dataset(read_options))


def log_dataset(info, index: RecordIndex) -> None:
    """One line on what was loaded: records, participants, trials, targets."""
    logging.info(
        "dataset %s: %d records, %d participants, %d trials, targets %s",
        info.full_name, len(index.participant_N), len(np.unique(index.participant_N)),
        len(np.unique(index.groups("trial"))), ", ".join(index.target_names),
    )
