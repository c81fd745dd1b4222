"""The runtime: how the fold axis runs, what 'auto' resolves to, and measured choices."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from muscle_jax import runtime
from muscle_jax.runtime import fold_axis, tune


def _per_fold(weights_D, inputs_D):
    return {"sum": jnp.tanh(weights_D * inputs_D).sum(), "scaled": weights_D * 2}


@pytest.mark.parametrize("execution", ["map", "unroll", "sequential"])
def test_every_fold_execution_computes_what_vmap_computes(execution):
    weights, inputs = jnp.arange(12.0).reshape(3, 4) / 10, jnp.ones((3, 4))
    reference = jax.vmap(_per_fold)(weights, inputs)
    program = fold_axis.FoldProgram(_per_fold, execution, lambda f, unrolled_folds, **kw: jax.jit(f, **kw))
    for got in (program(weights, inputs), program.compile(weights, inputs)(weights, inputs)):
        for name in reference:
            assert got[name].shape == reference[name].shape
            np.testing.assert_allclose(got[name], reference[name], rtol=1e-6)
    with pytest.raises(ValueError, match="fold_execution"):
        fold_axis.FoldProgram(_per_fold, "pmap", jax.jit)


def _settings(**fields):
    settings = runtime.default_settings()
    settings.update(fields)
    return settings


def test_auto_resolves_from_the_backend_and_pinned_fields_are_kept():
    rt = runtime.resolve(_settings(measure=()))
    assert (rt.conv, rt.fold_execution, rt.xla_options, rt.compute_dtype) == ("xla", "unroll", "tuned", "float32")
    assert rt.chosen_by["conv"] == "backend" and rt.conv_module is __import__("flax").linen.Conv
    assert runtime.resolve(_settings(measure=()), num_fold_devices=4).fold_execution == "vmap"
    assert runtime.resolve(_settings(measure=()), purpose="inference").fold_execution == runtime.CPU_INFERENCE_EXECUTION
    pinned = runtime.resolve(_settings(conv="winograd", xla_options="default", compute_dtype="bfloat16"))
    assert (pinned.conv, pinned.xla_options, pinned.dtype) == ("winograd", "default", jnp.bfloat16)
    assert pinned.chosen_by["conv"] == "config" and pinned.compiler_options() == {}
    assert rt.compiler_options(unrolled_folds=True)["xla_cpu_scheduler_type"] == "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"
    assert jax.config.jax_compilation_cache_dir  # compiled programs are kept


@pytest.mark.parametrize("field, value, message", [
    ("conv", "fft", "runtime.conv is 'fft'"),
    ("fold_execution", "pmap", "runtime.fold_execution is 'pmap'"),
    ("compute_dtype", "float16", "runtime.compute_dtype is 'float16'"),
    ("measure", ("speed",), "runtime.measure must be a tuple of fields"),
])
def test_settings_outside_their_choices_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        runtime.resolve(_settings(**{field: value}))


def test_sequential_folds_need_one_device():
    with pytest.raises(ValueError, match="'sequential' runs on one device"):
        runtime.resolve(_settings(fold_execution="sequential"), num_fold_devices=2)


def test_measured_choice_takes_the_faster_candidate_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSCLE_JAX_CACHE", str(tmp_path))
    calls = []

    def seconds_per_example(rt):  # 'sequential' is 20% faster here; xla options and conv make no difference
        calls.append((rt.conv, rt.xla_options, rt.fold_execution))
        return 1.0 if rt.fold_execution == "unroll" else 0.8

    settings = _settings(measure=("fold_execution", "xla_options"))
    rt = runtime.resolve(settings, measure=seconds_per_example, step_key={"model": "m"})
    assert rt.fold_execution == "sequential" and rt.chosen_by["fold_execution"] == "measured"
    assert rt.xla_options == "tuned"  # equal times: the plain candidate stays
    assert ("xla", "default", "sequential") in calls and ("xla", "tuned", "unroll") in calls
    assert len(calls) == tune.ROUNDS * 4
    cached = json.loads(next((tmp_path / "runtime").glob("*.json")).read_text())
    assert cached["chosen"] == {"fold_execution": "sequential", "xla_options": "tuned"}
    calls.clear()
    again = runtime.resolve(settings, measure=seconds_per_example, step_key={"model": "m"})
    assert calls == [] and again.fold_execution == "sequential" and again.chosen_by["fold_execution"] == "cached"
    other_step = runtime.resolve(settings, measure=seconds_per_example, step_key={"model": "other"})
    assert calls and other_step.fold_execution == "sequential"  # another step is measured anew


def test_a_faster_candidate_within_the_margin_does_not_replace_the_plain_one():
    assert tune.fastest([{}, {}], [1.0, 1.0 / (1 + tune.MARGIN / 2)]) == 0
    assert tune.fastest([{}, {}], [1.0, 1.0 / (1 + 2 * tune.MARGIN)]) == 1


def test_pinned_fields_and_other_backends_are_never_measured():
    def fail(_):
        raise AssertionError("measured")

    runtime.resolve(_settings(fold_execution="unroll"), measure=fail)
    runtime.resolve(_settings(), measure=fail, num_fold_devices=2)
    runtime.resolve(_settings(), measure=fail, purpose="inference")
