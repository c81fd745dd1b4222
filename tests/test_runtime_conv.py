import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from muscle_jax.models import layers
from muscle_jax.runtime import conv as formulations

_TOL = dict(rtol=2e-5, atol=2e-5)


def _reference_and_inputs(in_features=3, features=5, size=8, batch=2, seed=0):
    reference = nn.Conv(features, (3, 3), padding="SAME")
    x = jax.random.normal(jax.random.key(seed), (batch, size, size, in_features))
    params = reference.init(jax.random.key(seed + 1), x)["params"]
    # A non-zero bias, so that a dropped or misplaced bias cannot pass.
    params = {**params, "bias": jax.random.normal(jax.random.key(seed + 2), params["bias"].shape)}
    return reference, params, x


def _conv(formulation, features, dtype=None):
    return formulations.conv_module(formulation)(features, (3, 3), dtype=dtype)


# 'xla' is Flax's own convolution, the reference itself.
@pytest.mark.parametrize("in_features", [1, 3])  # 1: the image layer, which 'winograd' runs elementwise
@pytest.mark.parametrize("impl", [f for f in formulations.FORMULATIONS if f != "xla"])
def test_conv_matches_flax_conv_values_and_gradients(impl, in_features):
    reference, params, x = _reference_and_inputs(in_features=in_features)
    conv = _conv(impl, 5)
    assert jax.tree_util.tree_map(jnp.shape, conv.init(jax.random.key(0), x)["params"]) == jax.tree_util.tree_map(
        jnp.shape, params
    )
    np.testing.assert_allclose(conv.apply({"params": params}, x), reference.apply({"params": params}, x), **_TOL)

    # A loss that weighs every output differently, so that a transposed or shifted gradient fails.
    weights = jax.random.normal(jax.random.key(7), (2, 8, 8, 5))
    loss = lambda module: lambda p, x: jnp.sum(weights * jnp.tanh(module.apply({"params": p}, x)))  # noqa: E731
    got = jax.grad(loss(conv), argnums=(0, 1))(params, x)
    want = jax.grad(loss(reference), argnums=(0, 1))(params, x)
    np.testing.assert_allclose(got[1], want[1], **_TOL)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(got[0][name], want[0][name], **_TOL)


def test_chunked_kernel_gradient_sums_every_chunk_including_a_short_last_one():
    batch = 2 * formulations.WGRAD_CHUNK_IMAGES + 3  # two full chunks and a short one
    x = jax.random.normal(jax.random.key(0), (batch, 6, 6, 3))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
    weights = jax.random.normal(jax.random.key(2), (batch, 6, 6, 4))
    loss = lambda conv: lambda x, k: jnp.sum(weights * jnp.tanh(conv(x, k)))  # noqa: E731
    got = jax.grad(loss(formulations.conv_same_xla_chunked_wgrad), argnums=(0, 1))(x, kernel)
    want = jax.grad(loss(formulations.conv_same_xla), argnums=(0, 1))(x, kernel)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **_TOL)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_one_channel_conv_matches_xla_values_and_both_gradients(kernel_size):
    x = jax.random.normal(jax.random.key(0), (3, 9, 7, 1))
    kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 1, 4))
    weights = jax.random.normal(jax.random.key(2), (3, 9, 7, 4))
    np.testing.assert_allclose(formulations.conv_same_one_channel(x, kernel), formulations.conv_same_xla(x, kernel), **_TOL)
    loss = lambda conv: lambda x, k: jnp.sum(weights * jnp.tanh(conv(x, k)))  # noqa: E731
    got = jax.grad(loss(formulations.conv_same_one_channel), argnums=(0, 1))(x, kernel)
    want = jax.grad(loss(formulations.conv_same_xla), argnums=(0, 1))(x, kernel)
    for g, w in zip(got, want):  # the image's gradient too, though training never asks for it
        np.testing.assert_allclose(g, w, **_TOL)


@pytest.mark.parametrize("impl", formulations.FORMULATIONS)
def test_conv_vmapped_over_folds_equals_each_fold_alone(impl):
    conv = _conv(impl, 4)
    x_KxBxHxWxC = jax.random.normal(jax.random.key(0), (3, 2, 6, 6, 2))
    params_K = jax.vmap(lambda k: conv.init(k, x_KxBxHxWxC[0])["params"])(jax.random.split(jax.random.key(1), 3))

    def loss(params, x):
        return jnp.sum(jnp.sin(conv.apply({"params": params}, x)))

    values_K, grads_K = jax.vmap(jax.value_and_grad(loss))(params_K, x_KxBxHxWxC)
    for k in range(3):
        params_k = jax.tree_util.tree_map(lambda leaf: leaf[k], params_K)
        value, grads = jax.value_and_grad(loss)(params_k, x_KxBxHxWxC[k])
        np.testing.assert_allclose(values_K[k], value, **_TOL)
        for name in ("kernel", "bias"):
            np.testing.assert_allclose(grads_K[name][k], grads[name], **_TOL)


def test_bfloat16_compute_keeps_float32_parameters():
    conv = _conv("xla_wgrad_matmul", 4, dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
    params = conv.init(jax.random.key(1), x)["params"]
    assert params["kernel"].dtype == jnp.float32
    y = conv.apply({"params": params}, x)
    assert y.dtype == jnp.bfloat16
    grads = jax.grad(lambda p: jnp.sum(conv.apply({"params": p}, x).astype(jnp.float32)))(params)
    assert grads["kernel"].dtype == jnp.float32
    reference = _conv("xla", 4).apply({"params": params}, x)
    np.testing.assert_allclose(np.asarray(y, np.float32), reference, rtol=0.05, atol=0.05)


def test_max_pool_2x2_matches_flax_max_pool_and_its_gradient():
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))  # continuous values: no ties
    reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
    np.testing.assert_array_equal(layers.max_pool_2x2(x), reference(x))
    weights = jax.random.normal(jax.random.key(1), (2, 4, 3, 3))
    got = jax.grad(lambda x: jnp.sum(weights * layers.max_pool_2x2(x)))(x)
    want = jax.grad(lambda x: jnp.sum(weights * reference(x)))(x)
    np.testing.assert_allclose(got, want, **_TOL)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="runtime.conv must be one of"):
        formulations.conv_module("fft")
    with pytest.raises(ValueError, match="even"):
        layers.max_pool_2x2(jnp.zeros((1, 5, 4, 1)))


def test_a_model_runs_unchanged_with_any_formulation():
    from muscle_jax.models import create_model, model_config

    model_knobs = model_config("convnet", channels=(4, 8))
    x = jax.random.normal(jax.random.key(3), (2, 32, 32, 1))
    flax_conv = create_model(model_knobs, 2)
    params = flax_conv.init(jax.random.key(0), x, train=False)["params"]
    for formulation in ("matmul", "winograd"):
        formulated = create_model(model_knobs, 2, conv=formulations.conv_module(formulation))
        np.testing.assert_allclose(formulated.apply({"params": params}, x, train=False),
                                   flax_conv.apply({"params": params}, x, train=False), rtol=1e-4, atol=1e-5)
