import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from configs import default
from muscle_jax.models import MODELS, create_model


def _init(model, size=32):
    x = jnp.zeros((2, size, size, 1))
    return model.init(jax.random.key(0), x, train=False)["params"], x


def test_registry_names_the_families():
    assert {"convnet", "resnet"} <= set(MODELS)


def test_convnet_is_the_pinned_design():
    config = default.get_config().model
    model = create_model(config, num_targets=3)
    params, x = _init(model, 64)
    expected_channels = [1, 16, 16, 32, 32, 64, 64, 128]
    for stage in range(4):
        for i in range(2):
            kernel = params[f"conv{stage}_{i}"]["kernel"]
            assert kernel.shape == (3, 3, expected_channels[2 * stage + i], config.channels[stage])
    assert params["hidden"]["kernel"].shape == (128, 256)
    assert params["head"]["kernel"].shape == (256, 3)
    assert not any("Norm" in name for name in params)
    out = model.apply({"params": params}, x, train=False)
    assert out.shape == (2, 3) and out.dtype == jnp.float32


def test_dropout_is_active_only_in_training():
    config = default.get_config().model
    config.dropout = 0.5
    model = create_model(config, num_targets=2)
    params, _ = _init(model)
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 1))
    eval_a = model.apply({"params": params}, x, train=False)
    eval_b = model.apply({"params": params}, x, train=False)
    np.testing.assert_array_equal(eval_a, eval_b)
    train_a = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_a, eval_a)


@pytest.mark.parametrize("norm", ["none", "group", "layer"])
def test_resnet_depth_width_and_norm_are_knobs(norm):
    config = ml_collections.ConfigDict(dict(name="resnet", channels=(8, 16), blocks_per_stage=(2, 1), norm=norm))
    model = create_model(config, num_targets=3)
    params, x = _init(model)
    assert {"stage0_block0", "stage0_block1", "stage1_block0"} <= set(params)
    assert "stage1_block1" not in params
    assert model.apply({"params": params}, x, train=False).shape == (2, 3)


def test_the_default_config_switches_family_with_model_name_alone():
    config = default.get_config().model
    config.name = "resnet"
    with_hidden = create_model(config, num_targets=3)
    params, x = _init(with_hidden)
    assert params["hidden"]["kernel"].shape == (config.channels[-1], config.hidden)
    config.hidden = 0
    params_without, _ = _init(create_model(config, num_targets=3))
    assert "hidden" not in params_without and params_without["head"]["kernel"].shape == (config.channels[-1], 3)
    assert with_hidden.apply({"params": params}, x, train=False).shape == (2, 3)


def test_xla_and_matmul_convolutions_give_the_same_network():
    config = default.get_config().model
    config.channels = (4, 8)
    matmul = create_model(config, 2)
    config.conv_impl = "xla"
    xla = create_model(config, 2)
    params, _ = _init(matmul)
    x = jax.random.normal(jax.random.key(3), (2, 32, 32, 1))
    np.testing.assert_allclose(matmul.apply({"params": params}, x, train=False),
                               xla.apply({"params": params}, x, train=False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("field, value, message", [
    ("name", "transformer", "not one of"),
    ("dtype", "float16", "model.dtype"),
    ("conv_impl", "fft", "conv_impl"),
])
def test_bad_model_configs_are_named(field, value, message):
    config = default.get_config().model
    config[field] = value
    with pytest.raises(ValueError, match=message):
        _init(create_model(config, 3))


def test_unknown_knob_is_an_error():
    config = ml_collections.ConfigDict(dict(name="convnet", widht=3))
    with pytest.raises(ValueError, match="widht"):
        create_model(config, 3)


def test_roi_that_pooling_cannot_halve_is_named():
    model = create_model(default.get_config().model, 3)
    with pytest.raises(ValueError, match="multiples of 16; got 60×60"):
        model.init(jax.random.key(0), jnp.zeros((1, 60, 60, 1)), train=False)
