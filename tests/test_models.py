import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from configs import default
from muscle_jax import models, train
from muscle_jax.models import FAMILIES, create_model, family_knobs, model_config


def _init(model, size=32):
    x = jnp.zeros((2, size, size, 1))
    return model.init(jax.random.key(0), x, train=False)["params"], x


def test_registry_names_the_families():
    assert {"convnet", "resnet"} <= set(FAMILIES)


def test_convnet_is_the_pinned_design():
    config = default.get_config().model
    model = create_model(config, num_targets=3)
    params, x = _init(model, 64)
    channels = family_knobs(config)["channels"]
    assert channels == (16, 32, 64, 128)
    expected_in = [1, 16, 16, 32, 32, 64, 64, 128]
    for stage in range(4):
        for i in range(2):
            kernel = params[f"conv{stage}_{i}"]["kernel"]
            assert kernel.shape == (3, 3, expected_in[2 * stage + i], channels[stage])
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
    config = model_config("resnet", channels=(8, 16), blocks_per_stage=(2, 1), norm=norm)
    model = create_model(config, num_targets=3)
    params, x = _init(model)
    assert {"stage0_block0", "stage0_block1", "stage1_block0"} <= set(params)
    assert "stage1_block1" not in params
    assert ("GroupNorm_0" in params["stage0_block0"]) == (norm == "group")
    assert model.apply({"params": params}, x, train=False).shape == (2, 3)


def test_switching_family_by_name_gives_that_familys_own_defaults():
    config = default.get_config().model
    config.name = "resnet"
    knobs = family_knobs(config)
    assert knobs["norm"] == "group" and knobs["hidden"] == 0 and knobs["blocks_per_stage"] == (1, 1, 1, 1)
    assert knobs["dropout"] == 0.1 and knobs["input_norm"] == "per_image"  # what the config itself set
    params, _ = _init(create_model(config, num_targets=3))
    assert "hidden" not in params and "GroupNorm_0" in params["stage0_block0"]
    config.blocks_per_stage = (2, 2, 2, 2)
    assert "stage3_block1" in _init(create_model(config, num_targets=3))[0]


def test_a_knob_the_chosen_family_lacks_is_named_with_the_familys_knobs():
    config = default.get_config().model
    config.blocks_per_stage = (2, 2, 2, 2)
    with pytest.raises(ValueError, match=r"model.blocks_per_stage is not a knob of 'convnet' \(it is one of resnet\); "
                                         r"convnet's knobs: channels, dropout, hidden, input_norm, norm"):
        family_knobs(config)
    with pytest.raises(ValueError, match="not one of the registered families"):
        family_knobs({"name": "transformer"})
    with pytest.raises(ValueError, match="model.widht is not a knob of any registered family"):
        model_config("convnet", widht=3)


def test_the_runtime_hands_the_model_its_convolution_and_dtype():
    seen = []

    class RecordingConv(nn.Conv):
        def __call__(self, x):
            seen.append((self.features, self.dtype))
            return super().__call__(x)

    model = create_model(model_config("convnet", channels=(4, 8)), 2, conv=RecordingConv, dtype=jnp.bfloat16)
    params, x = _init(model)
    assert model.apply({"params": params}, x, train=False).dtype == jnp.float32
    assert seen[-4:] == [(4, jnp.bfloat16), (4, jnp.bfloat16), (8, jnp.bfloat16), (8, jnp.bfloat16)]
    assert params["conv0_0"]["kernel"].dtype == jnp.float32  # parameters stay float32


def test_roi_that_pooling_cannot_halve_is_named():
    model = create_model(default.get_config().model, 3)
    with pytest.raises(ValueError, match="multiples of 16; got 60×60"):
        model.init(jax.random.key(0), jnp.zeros((1, 60, 60, 1)), train=False)


class TinyNet(nn.Module):
    """A family defined here: one convolution and a head (the registry's promise: one class, one line)."""

    num_targets: int
    width: int = 3
    conv: object = nn.Conv
    dtype: object = None

    @nn.compact
    def __call__(self, images_BxHxWxC, *, train: bool):
        x = nn.relu(self.conv(self.width, (3, 3), dtype=self.dtype)(images_BxHxWxC))
        return nn.Dense(self.num_targets)(x.mean(axis=(1, 2)))


def test_a_new_family_is_one_class_and_one_registry_line(smoke_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "tiny", TinyNet)  # the one registry line
    config = smoke_dataset.config()
    config.model = models.model_config("tiny", width=5)  # its knobs now exist in every config.model
    config.train.num_steps = 1
    results = train.train_and_evaluate_on(config, tmp_path, smoke_dataset.source, smoke_dataset.info)
    assert np.isfinite(results["models"]["cnn"]["angle_deg"]["rmse"]["mean"])
    run = (tmp_path / "run.json").read_text()
    assert '"name": "tiny"' in run and '"width": 5' in run
