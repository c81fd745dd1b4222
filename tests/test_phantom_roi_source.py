"""The phantom's ROI source: its true aponeuroses ('oracle') or the segmentation stage's."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np
import pytest

from configs import default
from muscle_jax.data import phantom, pipeline, ultrasound_states
from muscle_jax.data.phantom.simulate import simulate_trial

NUM_FRAMES = 6


@pytest.fixture(scope="module")
def short_trial():
    """The first frames of a phantom_small trial (128×128 frames, 64×64 oracle ROIs)."""
    trial = simulate_trial(phantom.phantom_small(), 0, 0)
    num_frames = len(trial["frame"])
    return {k: (v[:NUM_FRAMES] if isinstance(v, np.ndarray) and v.shape[:1] == (num_frames,) else v)
            for k, v in trial.items()}


PER_FRAME = {"image", "frame_image", "mask", "angle_deg", "torque_nm", "emg_v", "frame", "time_s"}


def test_segmented_rois_replace_the_oracle_rois_and_resemble_them(short_trial):
    segmented = ultrasound_states.segmented_phantom_trial(short_trial, (64, 64), PER_FRAME, skip_bad_frames=False)
    oracle_NxP = short_trial["image"].reshape(NUM_FRAMES, -1).astype(np.float64)
    predicted_NxP = segmented["image"].reshape(NUM_FRAMES, -1).astype(np.float64)
    assert segmented["image"].shape == short_trial["image"].shape and segmented["image"].dtype == np.uint8
    assert not np.array_equal(oracle_NxP, predicted_NxP)
    # Same tissue between nearly the same lines: the two ROIs correlate pixel by pixel.
    correlations = [np.corrcoef(a, b)[0, 1] for a, b in zip(oracle_NxP, predicted_NxP)]
    assert min(correlations) > 0.3, correlations
    for key in ("frame_image", "angle_deg", "frame"):
        np.testing.assert_array_equal(segmented[key], short_trial[key])


def test_a_frame_without_muscle_is_named_or_left_out_of_every_feature(short_trial):
    trial = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in short_trial.items()}
    trial["frame_image"][2] = 0
    with pytest.raises(ValueError, match=r"participant 0 trial 0: .* 1 of 6 frames \(first \[2\]"):
        ultrasound_states.segmented_phantom_trial(trial, (64, 64), PER_FRAME, skip_bad_frames=False)
    kept = ultrasound_states.segmented_phantom_trial(trial, (64, 64), PER_FRAME, skip_bad_frames=True)
    np.testing.assert_array_equal(kept["frame"], [0, 1, 3, 4, 5])
    for key in PER_FRAME:
        assert len(kept[key]) == NUM_FRAMES - 1, key
    np.testing.assert_array_equal(kept["superficial_coeffs"], trial["superficial_coeffs"])  # not declared per-frame


def test_phantom_roi_source_gets_its_own_dataset_and_bad_choices_are_named(tmp_path, monkeypatch):
    config = default.get_config().dataset
    config.data_dir = str(tmp_path)
    preset = pipeline.builder_from_config(config).builder_config
    assert preset.roi_source == "oracle"
    config.roi_source = "oracle"
    assert pipeline.builder_from_config(config).builder_config.name == preset.name
    config.roi_source = "segmentation"
    segmented = pipeline.builder_from_config(config).builder_config
    assert segmented.name.startswith("phantom_small_") and segmented.name != preset.name
    assert segmented.roi_source == "segmentation"
    # The U-Net's weights are part of the dataset's identity: another checkpoint, another name.
    assert segmented.segmentation_model == pipeline.shipped_segmentation_digest() != ""
    monkeypatch.setattr(pipeline, "shipped_segmentation_digest", lambda: "a-retrained-model")
    assert pipeline.builder_from_config(config).builder_config.name != segmented.name
    monkeypatch.undo()
    config.roi_source = "calibration"
    with pytest.raises(ValueError, match="roi_source for a phantom"):
        pipeline.builder_from_config(config)


def test_roi_size_is_one_knob_for_phantom_and_real_sources(tmp_path):
    config = default.get_config().dataset
    config.data_dir = str(tmp_path)
    preset = pipeline.builder_from_config(config).builder_config.name
    config.roi_hw = (64, 64)  # phantom_small's own size: the preset itself
    assert pipeline.builder_from_config(config).builder_config.name == preset
    config.roi_hw = (32, 32)
    sized = pipeline.builder_from_config(config).builder_config
    assert sized.phantom_overrides == {"roi_hw": (32, 32)}
    assert ultrasound_states.phantom_config_of(sized).roi_hw == (32, 32)
    config.phantom_overrides = {"roi_hw": (32, 32)}
    assert pipeline.builder_from_config(config).builder_config.name == sized.name
    config.phantom_overrides = {"roi_hw": (48, 48)}
    with pytest.raises(ValueError, match="contradicts"):
        pipeline.builder_from_config(config)
