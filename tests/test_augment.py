import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

jax.config.update("jax_numpy_rank_promotion", "raise")

from muscle_jax.augment import augment_images


def _config(**changes):
    config = ml_collections.ConfigDict(dict(max_shift_px=0, gamma=(1.0, 1.0), gain=(1.0, 1.0), offset=0.0))
    config.update(changes)
    return config


def test_identity_settings_leave_images_unchanged():
    images = jax.random.uniform(jax.random.key(0), (4, 8, 10, 1))
    np.testing.assert_allclose(augment_images(jax.random.key(1), images, _config()), images, atol=1e-6)


def test_shift_moves_columns_and_repeats_the_edge_without_flipping():
    ramp = jnp.tile(jnp.arange(10.0)[None, None, :, None] / 10, (64, 3, 1, 1))
    shifted = np.asarray(augment_images(jax.random.key(2), ramp, _config(max_shift_px=3)))
    offsets = set()
    for image in shifted[:, 0, :, 0]:
        steps = np.diff(image)
        assert np.all(steps >= -1e-6)  # never reversed: the fascicles keep their direction
        interior = image[(image > 0) & (image < 0.9)]
        offsets.add(round(float(image[5] - 0.5) * 10))
        assert interior.size >= 10 - 2 * 3
    assert len(offsets) > 3 and max(abs(o) for o in offsets) <= 3


def test_photometric_jitter_stays_in_range_and_differs_per_image():
    images = jnp.full((16, 4, 4, 1), 0.5)
    out = np.asarray(augment_images(jax.random.key(3), images, _config(gamma=(0.8, 1.25), gain=(0.7, 1.3), offset=0.08)))
    assert out.min() >= 0.0 and out.max() <= 1.0
    per_image = out.reshape(16, -1)
    assert np.allclose(per_image, per_image[:, :1])  # one draw per image
    assert np.unique(per_image[:, 0].round(4)).size == 16
