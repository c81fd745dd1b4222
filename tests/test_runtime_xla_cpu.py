"""The CPU compiler options reach XLA, are known to this jaxlib, and leave the numbers unchanged."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np
import pytest

from muscle_jax import runtime, train
from muscle_jax.runtime import conv as layers
from muscle_jax.runtime import xla_cpu


def _conv_relu_loss(x_BxHxWxC, kernel_HxWxIxO):
    return jax.numpy.sum(jax.nn.relu(layers.conv_same_xla(x_BxHxWxC, kernel_HxWxIxO)) ** 2)


def test_tuned_options_compile_and_give_the_default_compilation_s_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 16, 8)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 8, 16)).astype(np.float32) * 0.1
    grad = jax.grad(_conv_relu_loss, argnums=(0, 1))
    tuned = jax.jit(grad, compiler_options=xla_cpu.compiler_options("cpu"))(x, kernel)
    default = jax.jit(grad)(x, kernel)
    for a, b in zip(tuned, default):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_options_apply_to_cpu_only():
    assert xla_cpu.compiler_options("cpu") == xla_cpu.CPU_COMPILER_OPTIONS
    assert xla_cpu.compiler_options("gpu") == {}
    assert xla_cpu.compiler_options("tpu") == {}


def _fold_step_inputs(smoke_dataset, rt, num_folds):
    config = smoke_dataset.config()
    state = train.build_state(config, rt, 3, num_folds, (16, 16, 1), train.sharding.make_mesh(num_folds))
    images = np.zeros((num_folds, 2, 16, 16, 1), np.uint8)
    targets = np.zeros((num_folds, 2, 3), np.float32)
    return state, images, targets, np.arange(num_folds)


def test_train_step_hands_its_compiler_options_to_xla(smoke_dataset, monkeypatch):
    rt = runtime.resolve(smoke_dataset.config().runtime).replace(fold_execution="vmap")
    inputs = _fold_step_inputs(smoke_dataset, rt, 1)
    train.make_fold_train_step(rt, 0).compile(*inputs)  # the tuned options compile
    # An option XLA does not know is an error at compile time: proof that the options get there.
    monkeypatch.setattr(xla_cpu, "CPU_COMPILER_OPTIONS", {"xla_cpu_no_such_option": True})
    with pytest.raises(Exception, match="xla_cpu_no_such_option"):
        train.make_fold_train_step(rt, 0).compile(*inputs)


def test_unrolled_fold_steps_get_the_memory_optimised_schedule_which_plans_less_memory(smoke_dataset, monkeypatch):
    assert xla_cpu.compiler_options("cpu", unrolled_folds=True) == {
        **xla_cpu.CPU_COMPILER_OPTIONS, **xla_cpu.UNROLLED_FOLDS_OPTIONS
    }
    assert xla_cpu.compiler_options("gpu", unrolled_folds=True) == {}
    rt = runtime.resolve(smoke_dataset.config().runtime).replace(fold_execution="unroll")
    inputs = _fold_step_inputs(smoke_dataset, rt, 2)

    def temp_bytes():
        return train.make_fold_train_step(rt, 0).compile(*inputs).memory_analysis().temp_size_in_bytes

    # The folds' working memory is shared instead of interleaved.
    memory_optimised = temp_bytes()
    monkeypatch.setattr(xla_cpu, "UNROLLED_FOLDS_OPTIONS", {})
    assert memory_optimised < temp_bytes()
