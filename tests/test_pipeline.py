"""The input pipeline: builder variants, label statistics and per-fold batches."""

from __future__ import annotations

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from configs import default
from muscle_jax import folds
from muscle_jax.data import pipeline


def test_variants_get_their_own_builder_config_names(tmp_path):
    config = default.get_config().dataset
    config.data_dir = str(tmp_path)
    preset = pipeline.builder_from_config(config).builder_config.name
    assert preset.startswith("phantom_small_")  # the name carries a digest of the dataset's identity
    assert pipeline.builder_from_config(config).builder_config.name == preset  # the same inputs, the same name
    config.phantom_overrides = {"num_participants": 4}
    varied = pipeline.builder_from_config(config).builder_config
    assert varied.name.startswith("phantom_small_") and varied.name != preset
    assert varied.phantom_overrides == {"num_participants": 4}
    real = default.get_config().dataset
    real.data_dir, real.builder_config, real.targets = str(tmp_path), "recordings", ("angle_deg", "torque_nm")
    real.manual_dir = str(tmp_path)
    real_config = pipeline.builder_from_config(real).builder_config
    assert real_config.name.startswith("recordings_") and real_config.targets == ("angle_deg", "torque_nm")
    real.roi_hw, real.roi_source, real.skip_bad_frames = (32, 48), "segmentation", True
    sized = pipeline.builder_from_config(real).builder_config
    assert (sized.roi_hw, sized.roi_source, sized.skip_bad_frames) == ((32, 48), "segmentation", True)
    assert sized.name != real_config.name
    real.phantom_overrides = {"num_participants": 4}
    with pytest.raises(ValueError, match="phantom_overrides"):
        pipeline.builder_from_config(real)


def test_unknown_builder_config_is_named(tmp_path):
    config = default.get_config().dataset
    config.builder_config = "phantom_huge"
    with pytest.raises(ValueError, match="phantom_huge"):
        pipeline.builder_from_config(config)


def test_index_matches_the_records(smoke_dataset):
    source = smoke_dataset.source
    index = pipeline.read_index(source, ("angle_deg", "torque_nm", "emg_v"), ("pennation_deg", "not_a_feature"))
    assert index.architecture_names == ("pennation_deg",)
    for i in (0, len(source) // 2, len(source) - 1):
        record = source[i]
        assert index.participant_N[i] == record["participant"] and index.frame_N[i] == record["frame"]
        np.testing.assert_allclose(index.targets_NxT[i], [record["angle_deg"], record["torque_nm"], record["emg_v"]])
    with pytest.raises(ValueError, match="not features of this dataset"):
        pipeline.read_index(source, ("angle_deg", "heart_rate"))


def test_batches_come_from_training_records_only_and_depend_only_on_the_step(smoke_dataset):
    source = smoke_dataset.source
    index = pipeline.read_index(source, ("angle_deg", "torque_nm", "emg_v"))
    fold_set = folds.make_folds(index.participant_N, "participant")
    stats = pipeline.label_stats(index.targets_NxT, fold_set.train_KxN)
    for k, train_N in enumerate(fold_set.train_KxN):
        np.testing.assert_allclose(stats.mean_KxT[k], index.targets_NxT[train_N].mean(0), rtol=1e-5)
    run = list(pipeline.train_batches(source, index, fold_set.train_KxN, stats, 8, seed=0, start_step=0, num_steps=5))
    resumed = list(pipeline.train_batches(source, index, fold_set.train_KxN, stats, 8, seed=0, start_step=3, num_steps=5))
    assert run[0]["image"].shape == (3, 8, 32, 32, 1) and run[0]["targets"].shape == (3, 8, 3)
    for a, b in zip(run[3:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["targets"], b["targets"])
    # Every standardised target of fold k, mapped back, is a training record's label of fold k.
    for batch in run:
        for k in range(fold_set.num_folds):
            physical = batch["targets"][k] * stats.std_KxT[k][None, :] + stats.mean_KxT[k][None, :]
            allowed = index.targets_NxT[fold_set.train_KxN[k]]
            distances = np.abs(physical[:, None, :] - allowed[None, :, :]).max(axis=2).min(axis=1)
            assert np.all(distances < 1e-3 * np.abs(allowed).max())


def test_frame_stacks_hold_earlier_frames_of_the_same_trial_only(smoke_dataset):
    source = smoke_dataset.source
    index = pipeline.read_index(source, ("angle_deg",))
    previous_N = index.previous_N
    starts_N = previous_N == np.arange(len(previous_N))
    # Exactly one start per (participant, trial), and it is the trial's first frame.
    assert starts_N.sum() == len(np.unique(index.groups("trial")))
    assert np.all(index.frame_N[starts_N] == 0)
    moved_N = ~starts_N
    np.testing.assert_array_equal(index.frame_N[previous_N[moved_N]], index.frame_N[moved_N] - 1)
    np.testing.assert_array_equal(index.trial_N[previous_N], index.trial_N)
    np.testing.assert_array_equal(index.participant_N[previous_N], index.participant_N)

    first_of_second_trial = int(np.flatnonzero(starts_N)[1])
    chosen_KxB = np.array([[5, first_of_second_trial + 1], [first_of_second_trial, 0]])
    inputs = pipeline.read_model_inputs(source, index, chosen_KxB, 3)
    assert inputs.shape == (2, 2, 32, 32, 3) and inputs.dtype == np.uint8
    image = lambda i: source[int(i)]["image"][..., 0]  # noqa: E731
    for s, record in enumerate((3, 4, 5)):  # earliest first, the frame itself last
        np.testing.assert_array_equal(inputs[0, 0, ..., s], image(record))
    for s, record in enumerate((first_of_second_trial,) * 2 + (first_of_second_trial + 1,)):
        np.testing.assert_array_equal(inputs[0, 1, ..., s], image(record))  # clamped at the trial's start
    np.testing.assert_array_equal(pipeline.read_model_inputs(source, index, chosen_KxB, 1)[..., 0], inputs[..., 2])

    # A new recording's consecutive frames are stacked by the same rule.
    frames_NxHxWx1 = pipeline.read_images(source, np.arange(first_of_second_trial, first_of_second_trial + 4))
    stacked = pipeline.stack_sequence(frames_NxHxWx1, 3)
    np.testing.assert_array_equal(stacked, pipeline.read_model_inputs(
        source, index, np.arange(first_of_second_trial, first_of_second_trial + 4), 3))
    with pytest.raises(ValueError, match="frame_stack"):
        pipeline.stack_indices(previous_N, chosen_KxB, 0)
