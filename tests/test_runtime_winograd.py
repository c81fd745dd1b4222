import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import jax.numpy as jnp
import numpy as np
import pytest

from muscle_jax.runtime import conv as layers
from muscle_jax.runtime import winograd


def _assert_close_relative(got, want, tolerance=1e-4):
    """F(4×4, 3×3) in float32 differs from a direct convolution by about 1e-5 of the output's scale."""
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * scale)


def _loss_and_inputs(batch, height, width, in_features, features):
    x = jax.random.normal(jax.random.key(0), (batch, height, width, in_features))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, in_features, features)) / np.sqrt(9 * in_features)
    weights = jax.random.normal(jax.random.key(2), (batch, height, width, features))

    def loss(conv):
        return lambda x, kernel: jnp.sum(weights * jnp.tanh(conv(x, kernel)))

    return loss, x, kernel


@pytest.mark.parametrize(
    "shape",
    [
        (2, 8, 8, 16, 8),  # whole tiles
        (3, 9, 7, 5, 4),  # partial last tiles in both directions
        (1, 5, 12, 3, 2),  # one image, fewer rows than a tile
    ],
)
def test_winograd_matches_direct_convolution_values_and_gradients(shape):
    loss, x, kernel = _loss_and_inputs(*shape)
    _assert_close_relative(winograd.conv_same_winograd(x, kernel), layers.conv_same_xla(x, kernel))
    got = jax.grad(loss(winograd.conv_same_winograd), argnums=(0, 1))(x, kernel)
    want = jax.grad(loss(layers.conv_same_xla), argnums=(0, 1))(x, kernel)
    for g, w in zip(got, want):
        _assert_close_relative(g, w)


def test_winograd_transposes_are_the_gradients_of_the_transforms():
    """The hand-written backward transforms equal autodiff through the forward ones."""
    x = jax.random.normal(jax.random.key(0), (2, 9, 7, 3))
    num_tiles = winograd.input_tiles_PxTxC(x).shape[1]
    products = jax.random.normal(jax.random.key(1), (36, num_tiles, 4))
    output_grad = jax.random.normal(jax.random.key(2), (2, 9, 7, 4))
    _, output_vjp = jax.vjp(lambda p: winograd.output_from_tiles_BxHxWxO(p, 2, 9, 7), products)
    np.testing.assert_allclose(
        winograd.output_gradient_tiles_PxTxO(output_grad), output_vjp(output_grad)[0], rtol=1e-5, atol=1e-5
    )
    kernel = jax.random.normal(jax.random.key(3), (3, 3, 3, 4))
    kernel_tiles_grad = jax.random.normal(jax.random.key(4), (36, 3, 4))
    _, kernel_vjp = jax.vjp(winograd.kernel_tiles_PxIxO, kernel)
    np.testing.assert_allclose(
        winograd.kernel_gradient_3x3xIxO(kernel_tiles_grad), kernel_vjp(kernel_tiles_grad)[0], rtol=1e-5, atol=1e-5
    )


def test_winograd_rejects_other_kernel_sizes():
    with pytest.raises(ValueError, match="3×3 kernel"):
        winograd.conv_same_winograd(jnp.zeros((1, 8, 8, 2)), jnp.zeros((5, 5, 2, 2)))


def test_winograd_impl_uses_winograd_exactly_on_wide_layers():
    wide = layers.WINOGRAD_MIN_IN_CHANNELS
    for in_features, expected in ((wide, winograd.conv_same_winograd), (wide - 1, layers.conv_same_xla_chunked_wgrad)):
        x = jax.random.normal(jax.random.key(0), (2, 8, 8, in_features))
        kernel = jax.random.normal(jax.random.key(1), (3, 3, in_features, 2))
        np.testing.assert_array_equal(layers.conv_function("winograd")(x, kernel), expected(x, kernel))


def test_winograd_vmapped_over_folds_equals_each_fold_alone():
    loss, x, kernel = _loss_and_inputs(2, 8, 8, 4, 3)
    x_K, kernel_K = jnp.stack([x, -x, 2 * x]), jnp.stack([kernel, kernel[::-1], 0.5 * kernel])
    grads_K = jax.vmap(jax.grad(loss(winograd.conv_same_winograd), argnums=(0, 1)))(x_K, kernel_K)
    for k in range(3):
        grads = jax.grad(loss(winograd.conv_same_winograd), argnums=(0, 1))(x_K[k], kernel_K[k])
        for g_K, g in zip(grads_K, grads):
            _assert_close_relative(g_K[k], g, tolerance=1e-5)


def test_winograd_keeps_the_computation_dtype():
    x = jnp.ones((1, 8, 8, 2), jnp.bfloat16)
    kernel = jnp.ones((3, 3, 2, 2), jnp.bfloat16)
    assert winograd.conv_same_winograd(x, kernel).dtype == jnp.bfloat16
