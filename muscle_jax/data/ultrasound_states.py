"""tfds builder `ultrasound_states`: segmented ultrasound frames with the muscle's state.

One split, `full`, holds every frame of every participant in generation order (participant,
trial, frame); cross-validation folds are made from the `participant` and `trial` features,
never from tfds splits. Written as array_record and read without TensorFlow.

BuilderConfigs:
  phantom_small  the CPU default phantom (muscle_jax.data.phantom.phantom_small)
  phantom_paper  19 participants at paper-scale recording length
  phantom_smoke  a few seconds of 3 tiny participants, for tests
  gasfastrack    real calf video + dynamometer (manual_dir ../shared/data/gasfastrack)
  recordings     users' own recordings in the documented generic layout (docs/recordings.md)

Images are stored as raw bytes (`Encoding.BYTES`): speckle does not compress, and tfds
would otherwise serialise uint8 tensors as int64 lists, 4× slower to build.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from muscle_jax.data import phantom, recordings
from muscle_jax.segmentation import segment_frames

STATE_TARGETS = ("angle_deg", "torque_nm", "emg_v")
ARCHITECTURE_LABELS = ("fascicle_length_mm", "pennation_deg", "thickness_mm")
PHANTOM_ROI_SOURCES = ("oracle", "segmentation")


@dataclasses.dataclass(eq=False)
class UltrasoundStatesConfig(tfds.core.BuilderConfig):
    """What to build: `source` is 'phantom' or a real-recording layout ('gasfastrack', 'recordings').

    phantom_preset / phantom_overrides: a preset function of muscle_jax.data.phantom and the
    fields of its PhantomConfig to replace. roi_hw / targets / emg: real layouts only (the
    phantom's ROI size and targets come from its PhantomConfig). roi_source: 'calibration' or
    'segmentation' for real layouts; 'oracle' (the phantom's true aponeuroses) or
    'segmentation' (the shipped U-Net on the rendered frame) for the phantom.
    skip_bad_frames: frames the data cannot label or segment are left out (counted, logged)
    instead of failing the build. segmentation_model: a digest of the U-Net that cut the ROIs
    (set by the pipeline when roi_source is 'segmentation'), so a retrained model builds anew.
    """

    source: str = "phantom"
    phantom_preset: str = "phantom_small"
    phantom_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    roi_hw: tuple[int, int] = (64, 64)
    roi_source: str = "calibration"
    targets: tuple[str, ...] = STATE_TARGETS
    emg: dict[str, Any] | None = None
    skip_bad_frames: bool = False
    segmentation_model: str = ""


def phantom_config_of(builder_config: UltrasoundStatesConfig):
    """The PhantomConfig a phantom builder config generates from (its preset, then its overrides)."""
    return dataclasses.replace(phantom.preset(builder_config.phantom_preset), **builder_config.phantom_overrides)


class UltrasoundStates(tfds.core.GeneratorBasedBuilder):
    """Segmented B-mode ROIs of the medial gastrocnemius with joint angle, torque and EMG."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Phantom and real-recording sources; array_record; split `full`."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "gasfastrack: ../shared/data/gasfastrack (the default). recordings: the generic layout of "
        "docs/recordings.md; pass its folder as the manual dir (config.dataset.manual_dir)."
    )
    BUILDER_CONFIGS = [
        UltrasoundStatesConfig(name="phantom_small", description="CPU-default phantom", phantom_preset="phantom_small",
                               roi_source="oracle"),
        UltrasoundStatesConfig(name="phantom_paper", description="19-participant paper-scale phantom",
                               phantom_preset="phantom_paper", roi_source="oracle"),
        UltrasoundStatesConfig(name="phantom_smoke", description="tiny phantom for tests", phantom_preset="phantom_smoke",
                               roi_source="oracle"),
        UltrasoundStatesConfig(name="gasfastrack", description="GasFasTrack p6 clips (angle, torque)", source="gasfastrack",
                               targets=("angle_deg", "torque_nm")),
        UltrasoundStatesConfig(name="recordings", description="users' recordings, generic layout", source="recordings"),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        bytes_encoding = tfds.features.Encoding.BYTES
        scalar = lambda dtype: tfds.features.Scalar(dtype=dtype)  # noqa: E731
        if self.builder_config.source == "phantom":
            phantom_config = phantom_config_of(self.builder_config)
            roi_h, roi_w = phantom_config.roi_hw
            frame_h, frame_w = phantom_config.frame_hw
            targets = STATE_TARGETS
            extra = {
                "frame_image": tfds.features.Tensor(shape=(frame_h, frame_w, 1), dtype=np.uint8, encoding=bytes_encoding),
                "mask": tfds.features.Tensor(shape=(frame_h, frame_w, 1), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB),
                **{name: scalar(np.float32) for name in ARCHITECTURE_LABELS},
            }
            metadata = {"phantom_config": json.dumps(dataclasses.asdict(phantom_config), default=str)}
        else:
            roi_h, roi_w = self.builder_config.roi_hw
            targets = self.builder_config.targets
            unknown = set(targets) - set(STATE_TARGETS)
            if unknown:
                raise ValueError(f"builder config {self.builder_config.name!r}: unknown targets {sorted(unknown)}; "
                                 f"known: {STATE_TARGETS}")
            extra, metadata = {}, {"roi_source": self.builder_config.roi_source}
        features = {
            "image": tfds.features.Tensor(shape=(roi_h, roi_w, 1), dtype=np.uint8, encoding=bytes_encoding),
            **{name: scalar(np.float32) for name in targets},
            "participant": scalar(np.int32),
            "trial": scalar(np.int32),
            "frame": scalar(np.int32),
            "time_s": scalar(np.float32),
            **extra,
        }
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(metadata),
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        return {"full": self._generate_examples(dl_manager)}

    def _generate_examples(self, dl_manager) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.builder_config.source == "phantom":
            trials = self._phantom_trials()
        else:
            # tfds raises, naming the folder and MANUAL_DOWNLOAD_INSTRUCTIONS, when it is missing.
            trials = recordings.iter_trials(
                layout=self.builder_config.source,
                manual_dir=Path(dl_manager.manual_dir),
                roi_hw=tuple(self.builder_config.roi_hw),
                roi_source=self.builder_config.roi_source,
                targets=tuple(self.builder_config.targets),
                emg=self.builder_config.emg,
                skip_bad_frames=self.builder_config.skip_bad_frames,
            )
        feature_names = set(self.info.features.keys())
        for trial in trials:
            num_frames = len(trial["frame"])
            per_frame = {k: v for k, v in trial.items() if k in feature_names and k not in ("participant", "trial")}
            for t in range(num_frames):
                example = {k: v[t] for k, v in per_frame.items()}
                example["participant"] = np.int32(trial["participant"])
                example["trial"] = np.int32(trial["trial"])
                yield f"{trial['participant']:04d}_{trial['trial']:03d}_{t:06d}", example

    def _phantom_trials(self) -> Iterator[dict[str, Any]]:
        roi_source = self.builder_config.roi_source
        if roi_source not in PHANTOM_ROI_SOURCES:
            raise ValueError(f"builder config {self.builder_config.name!r}: a phantom's roi_source must be one of "
                             f"{PHANTOM_ROI_SOURCES}, got {roi_source!r}")
        phantom_config = phantom_config_of(self.builder_config)
        per_frame = set(self.info.features.keys()) - {"participant", "trial"}
        for _, trials in phantom.simulate_participants(phantom_config):
            for trial in trials:
                if roi_source == "segmentation":
                    trial = segmented_phantom_trial(trial, phantom_config.roi_hw, per_frame, self.builder_config.skip_bad_frames)
                yield trial


def segmented_phantom_trial(trial: dict[str, Any], roi_hw, per_frame_keys, skip_bad_frames: bool) -> dict[str, Any]:
    """The phantom trial with its oracle ROIs replaced by the segmentation stage's.

    The shipped U-Net segments each rendered `frame_image`; its fitted aponeuroses cut the ROI.
    A frame where it finds no muscle is an error naming the participant, trial and frames, or,
    with `skip_bad_frames`, is left out of every per-frame feature (and logged).
    """
    result = segment_frames(np.ascontiguousarray(trial["frame_image"][..., 0]), tuple(roi_hw))
    trial = {**trial, "image": np.asarray(result.rois_NxhxW, np.uint8)[..., None]}
    if result.found_N.all():
        return trial
    lost = np.flatnonzero(~result.found_N)
    where = (f"phantom participant {trial['participant']} trial {trial['trial']}: the segmentation stage found no "
             f"muscle in {len(lost)} of {len(result.found_N)} frames (first {lost[:5].tolist()}: "
             f"{result.reasons[int(lost[0])]})")
    if not skip_bad_frames:
        raise ValueError(where + " (set dataset.skip_bad_frames to leave them out, counted)")
    logging.warning("%s; left out", where)
    return {k: (v[result.found_N] if k in per_frame_keys else v) for k, v in trial.items()}


_CITATION = """\
@article{cunningham2017ultrasound,
  title={The application of deep convolutional neural networks to ultrasound for modelling of
         dynamic states within human skeletal muscle},
  author={Cunningham, Ryan J. and Harding, Peter J. and Loram, Ian D.},
  journal={arXiv preprint arXiv:1706.09450},
  year={2017}
}"""
