"""The CPU compiler options reach XLA, are known to this jaxlib, and leave the numbers unchanged."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np
import pytest

from muscle_jax import train, xla_cpu
from muscle_jax.models import create_model, layers


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


def test_train_step_hands_its_compiler_options_to_xla(smoke_dataset):
    config = smoke_dataset.config()
    model = create_model(config.model, 3)
    tx = train.make_optimizer(config.train)
    state = train.create_fold_state(model, tx, 0, 1, (16, 16, 1))
    images = np.zeros((1, 2, 16, 16, 1), np.uint8)
    targets = np.zeros((1, 2, 3), np.float32)
    # An option XLA does not know is an error at compile time: proof that the options get there.
    bogus = train.make_fold_train_step(0, "vmap", compiler_options={"xla_cpu_no_such_option": True})
    with pytest.raises(Exception, match="xla_cpu_no_such_option"):
        bogus.lower(state, images, targets).compile()
    train.make_fold_train_step(0, "vmap").lower(state, images, targets).compile()  # the tuned default compiles


def test_unrolled_fold_steps_get_the_memory_optimised_schedule_which_plans_less_memory(smoke_dataset):
    config = smoke_dataset.config()
    model = create_model(config.model, 3)
    tx = train.make_optimizer(config.train)
    num_folds = 2
    state = train.create_fold_state(model, tx, 0, num_folds, (16, 16, 1))
    images = np.zeros((num_folds, 2, 16, 16, 1), np.uint8)
    targets = np.zeros((num_folds, 2, 3), np.float32)
    assert xla_cpu.compiler_options("cpu", unrolled_folds=True) == {
        **xla_cpu.CPU_COMPILER_OPTIONS, **xla_cpu.UNROLLED_FOLDS_OPTIONS
    }
    assert xla_cpu.compiler_options("gpu", unrolled_folds=True) == {}

    def temp_bytes(compiler_options):
        step = train.make_fold_train_step(0, "unroll", compiler_options=compiler_options)
        return step.lower(state, images, targets).compile().memory_analysis().temp_size_in_bytes

    # The default (None) for unrolled folds is the memory-optimised schedule: the folds'
    # working memory is shared instead of interleaved.
    default_bytes = temp_bytes(None)
    assert default_bytes == temp_bytes(xla_cpu.compiler_options(unrolled_folds=True))
    assert default_bytes < temp_bytes(xla_cpu.compiler_options())
