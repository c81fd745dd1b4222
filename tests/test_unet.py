"""The segmentation U-Net: shapes, input checks, and the two convolution implementations agreeing."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")


def key(seed):
    # XLA's RNG: threefry's unrolled rounds take tens of seconds to compile on a busy 2-core CPU.
    return jax.random.key(seed, impl="rbg")


import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from muscle_jax.models.unet import UNet  # noqa: E402
from muscle_jax.runtime.conv import conv_module  # noqa: E402


def test_logits_have_the_input_size_and_requested_channels():
    model = UNet(features=4, depth=2, out_channels=3)
    x = jax.random.uniform(key(0), (2, 16, 8, 1))
    params = jax.jit(model.init)(key(1), x)
    assert jax.jit(model.apply)(params, x).shape == (2, 16, 8, 3)


def test_size_not_divisible_by_two_to_the_depth_is_an_error():
    model = UNet(features=4, depth=3)
    with pytest.raises(ValueError, match="divisible by 2\\^depth = 8"):
        model.init(key(0), jnp.zeros((1, 20, 16, 1)))


def test_a_formulated_convolution_gives_flax_convs_logits():
    x = jax.random.uniform(key(0), (2, 16, 16, 1))
    flax_conv = UNet(features=4, depth=2)
    params = flax_conv.init(key(1), x)
    matmul = UNet(features=4, depth=2, conv=conv_module("matmul"))
    np.testing.assert_allclose(jax.jit(matmul.apply)(params, x), jax.jit(flax_conv.apply)(params, x), atol=1e-4)


def test_output_depends_on_distant_pixels_through_the_bottleneck():
    # A U-Net of depth 3 sees far beyond its 3×3 kernels: changing one corner pixel moves
    # the logit at the opposite corner.
    model = UNet(features=4, depth=3, norm_groups=0)
    x = jax.random.uniform(key(1), (1, 32, 32, 1))
    params = model.init(key(0), x)
    apply = jax.jit(model.apply)
    moved = apply(params, x.at[0, 0, 0, 0].set(1.0))[0, 20, 20] - apply(params, x)[0, 20, 20]
    assert float(jnp.abs(moved).max()) > 0
