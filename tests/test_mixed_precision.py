"""`runtime.compute_dtype='bfloat16'`: bf16 convolutions and matmuls, float32 parameters,
optimiser state, loss and predictions, in the train step and in evaluation alike.

The programs are read as JAX lowers them (what the model asks the compiler for): XLA's CPU
backend then runs a bf16 convolution on operands converted to f32 and rounds its result back
to bf16 (docs/scaling.md), where a GPU runs it natively."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muscle_jax import evaluate, runtime, sharding, train

NUM_FOLDS, BATCH = 2, 4


def _dtypes_of(lowered_text: str, op: str) -> set[str]:
    """Element types of the results of every `stablehlo.<op>` in a lowered program's text."""
    return set(re.findall(rf"stablehlo\.{op}.*-> tensor<[^>]*x(\w+)>", lowered_text))


@pytest.mark.parametrize("compute_dtype, expected", [("bfloat16", "bf16"), ("float32", "f32")])
def test_compute_dtype_sets_the_arithmetic_and_leaves_parameters_and_optimiser_state_float32(
        smoke_dataset, compute_dtype, expected):
    config = smoke_dataset.config()
    config.runtime.compute_dtype = compute_dtype
    config.runtime.fold_execution = "vmap"  # one program whose HLO holds every convolution
    rt = runtime.resolve(config.runtime)
    assert rt.compute_dtype == compute_dtype and rt.chosen_by["compute_dtype"] == "config"
    image_shape = smoke_dataset.source[0]["image"].shape
    state = train.build_state(config, rt, 3, NUM_FOLDS, image_shape, sharding.make_mesh(NUM_FOLDS, jax.devices()[:1]))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (NUM_FOLDS, BATCH, *image_shape), dtype=np.uint8)
    targets = rng.standard_normal((NUM_FOLDS, BATCH, 3)).astype(np.float32)

    program = train.make_fold_train_step(rt, config.seed)
    lowered = program.lower(state, images, targets, jnp.arange(NUM_FOLDS))
    assert _dtypes_of(lowered.as_text(), "convolution") == {expected}  # forward and both gradients
    assert _dtypes_of(lowered.as_text(), "dot_general") == {expected}
    state, metrics = lowered.out_info  # the new state and the metrics, as shapes and dtypes
    float_leaves = [leaf for leaf in jax.tree.leaves((state.params, state.opt_state))
                    if jnp.issubdtype(leaf.dtype, jnp.floating)]
    assert float_leaves and {leaf.dtype for leaf in float_leaves} == {jnp.dtype(jnp.float32)}
    assert metrics["loss"].dtype == jnp.float32

    eval_args = (state.params, images, targets, np.ones((NUM_FOLDS, BATCH), bool),
                 np.zeros((NUM_FOLDS, 3), np.float32), np.ones((NUM_FOLDS, 3), np.float32))
    eval_lowered = evaluate.make_eval_step(state.apply_fn, rt).lower(*eval_args)
    assert _dtypes_of(eval_lowered.as_text(), "convolution") == {expected}
    predictions_KxExT, _ = eval_lowered.out_info
    assert predictions_KxExT.dtype == jnp.float32
