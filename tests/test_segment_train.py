"""Segmentation training: real DL_Track pairs load and split as promised, augmentation keeps
image and mask aligned, and training steps reduce the loss."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")


def key(seed):
    # XLA's RNG: threefry's unrolled rounds take tens of seconds to compile on a busy 2-core CPU.
    return jax.random.key(seed, impl="rbg")


from pathlib import Path  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from configs.segmentation import get_config  # noqa: E402
from muscle_jax.segmentation import dl_track  # noqa: E402
from muscle_jax.segmentation.augment import augment_batch  # noqa: E402
from muscle_jax.segmentation.train import create_state, loss_and_metrics, make_train_step  # noqa: E402

DL_TRACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "dl_track_aponeurosis"
needs_data = pytest.mark.skipif(not DL_TRACK.is_dir(), reason=f"{DL_TRACK} not present")


def tiny_config():
    config = get_config("smoke")
    config.input_hw = (32, 16)
    config.model.features = 4
    config.model.depth = 2
    config.augment.crop_hw = (0, 0)
    return config


def identity_augmentation(config):
    augment = config.augment
    augment.flip_probability, augment.scale_range, augment.aspect_jitter = 0.0, (1.0, 1.0), 0.0
    augment.max_shift_fraction, augment.gain_range, augment.gamma_range = 0.0, (1.0, 1.0), (1.0, 1.0)
    augment.speckle_sigma_max, augment.noise_sigma_max = 0.0, 0.0
    return augment


@needs_data
def test_split_holds_out_whole_images_of_every_size_and_is_fixed_by_seed():
    pairs = dl_track.list_pairs(DL_TRACK)
    train, validation = dl_track.split_pairs(pairs, 0.15, seed=0)
    assert len(train) + len(validation) == len(pairs) == 424
    assert not {p.name for p in train} & {p.name for p in validation}
    assert {p.size_wh for p in validation if p.size_wh != (1234, 687)} == {p.size_wh for p in train} - {(1234, 687)}
    assert dl_track.split_pairs(pairs, 0.15, seed=0) == (train, validation)
    assert dl_track.split_pairs(pairs, 0.15, seed=1)[1] != validation


def test_identity_augmentation_changes_nothing_and_flip_mirrors_both():
    config = tiny_config()
    images = jax.random.uniform(key(0), (2, 32, 16))
    masks = (images > 0.7).astype(jnp.float32)
    augment = identity_augmentation(config)
    same_images, same_masks = augment_batch(key(1), images, masks, augment)
    np.testing.assert_allclose(same_images, images, atol=1e-5)
    np.testing.assert_allclose(same_masks, masks, atol=1e-5)
    augment.flip_probability = 1.0
    flipped_images, flipped_masks = augment_batch(key(1), images, masks, augment)
    np.testing.assert_allclose(flipped_images, images[:, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(flipped_masks, masks[:, :, ::-1], atol=1e-5)


def test_default_augmentation_moves_image_and_mask_together():
    # A bright image region marked by the mask must stay under the mask after a warp.
    config = get_config()
    config.augment.speckle_sigma_max, config.augment.noise_sigma_max = 0.0, 0.0
    config.augment.gain_range, config.augment.gamma_range = (1.0, 1.0), (1.0, 1.0)
    config.augment.crop_hw = (48, 32)
    masks = jnp.zeros((8, 64, 32)).at[:, 20:28, :].set(1.0)
    images = masks * 0.9 + 0.05
    warped_images, warped_masks = augment_batch(key(3), images, masks, config.augment)
    inside = np.asarray(warped_masks) > 0.99
    assert inside.any()
    assert np.all(np.asarray(warped_images)[inside] > 0.9)


def test_loss_is_lower_for_the_true_mask_than_for_its_complement():
    masks = jnp.zeros((2, 16, 16)).at[:, 4:7, :].set(1.0)
    good, _ = loss_and_metrics(20.0 * (masks - 0.5), masks, 1.0)
    bad, _ = loss_and_metrics(20.0 * (0.5 - masks), masks, 1.0)
    assert float(good) < 0.05 < 1.0 < float(bad)


@needs_data
def test_training_steps_on_a_few_real_images_reduce_the_loss():
    config = tiny_config()
    config.train.learning_rate, config.train.num_steps = 1e-2, 15
    identity_augmentation(config)
    pairs = [p for p in dl_track.list_pairs(DL_TRACK) if p.size_wh == (512, 512)][:4]  # one resize compile
    frames, masks = dl_track.load_at_working_resolution(pairs, config.input_hw)
    assert frames.shape == (4, 32, 16) and frames.dtype == np.uint8
    assert 0.0 < masks.mean() < 0.2
    state = create_state(config, key(0))
    step = make_train_step(config)
    indices = jnp.arange(4)
    losses = []
    for i in range(config.train.num_steps):
        state, metrics = step(state, key(i), jnp.asarray(frames), jnp.asarray(masks), indices)
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * losses[0]


def test_phantom_frames_come_with_their_aponeurosis_masks_from_other_simulated_people():
    from muscle_jax.data import phantom
    from muscle_jax.data.phantom.simulate import simulate_trial
    from muscle_jax.segmentation.phantom_frames import phantom_training_frames

    frames, masks = phantom_training_frames(10, (64, 32))
    assert frames.shape == masks.shape == (10, 64, 32) and frames.dtype == np.uint8
    assert 0.0 <= masks.min() and masks.max() <= 1.0
    # Both aponeuroses are bands across the frame: most columns have mask in two row ranges.
    for mask in masks > 0.5:
        rows = np.flatnonzero(mask[:, 16])
        assert len(rows) >= 2 and np.diff(rows).max() > 5  # a gap (the muscle) between two bands
    # Bright where the mask is: the aponeuroses are echogenic.
    assert frames[masks > 0.5].mean() > frames[masks < 0.1].mean() + 20
    small = phantom.phantom_small()
    combined = len(small.trial_durations_s()) - 1
    regression_frame = simulate_trial(small, 0, combined)["frame_image"][0, ..., 0]  # what frames[0] would be
    assert not np.array_equal(frames[0], dl_track.resize_pair(regression_frame, regression_frame > 0, (64, 32))[0])
    with pytest.raises(ValueError, match="phantom_preset"):
        phantom_training_frames(4, (64, 32), "phantom_huge")
