import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from muscle_jax import sharding

_REPO = Path(__file__).resolve().parents[1]

# Two steps of the real fold-stacked train step on a tiny convnet, once on one device and once
# placed on the ('fold', 'data') mesh over all devices; prints the largest parameter
# difference and where the new state lives.
_STEP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    from configs import smoke
    from muscle_jax import runtime, sharding, train

    config = smoke.get_config()
    num_folds, batch_size, size = 2, 4, 16
    rt = runtime.resolve(config.runtime).replace(fold_execution=sys.argv[1])
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (num_folds, batch_size, size, size, 1), dtype=np.uint8),
        "targets": rng.standard_normal((num_folds, batch_size, 3)).astype(np.float32),
    }

    def two_steps(mesh, place_batch):
        state = train.build_state(config, rt, 3, num_folds, (size, size, 1), mesh)
        step = train.make_fold_train_step(rt, 0)
        placed = place_batch(batch)
        for _ in range(2):
            state, metrics = step(state, placed["image"], placed["targets"], np.arange(num_folds))
        return state, metrics

    plain_state, plain_metrics = two_steps(sharding.make_mesh(num_folds, jax.devices()[:1]), lambda b: b)
    mesh = sharding.make_mesh(num_folds)
    state, metrics = two_steps(mesh, lambda b: sharding.shard_batch(b, mesh))
    diffs = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
        lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), state.params, plain_state.params))
    kernel = state.params["conv0_0"]["kernel"]
    print(json.dumps({
        "devices": len(jax.devices()),
        "mesh": dict(mesh.shape),
        "max_param_diff": max(diffs),
        "max_loss_diff": float(np.max(np.abs(np.asarray(metrics["loss"]) - np.asarray(plain_metrics["loss"])))),
        "kernel_devices": len(kernel.sharding.device_set),
        "loss_moved": float(np.max(np.abs(np.asarray(plain_metrics["loss"])))) > 0,
    }))
    """
)


def _run_step_script(num_devices: int, fold_execution: str) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}", JAX_PLATFORMS="cpu")
    completed = subprocess.run(
        [sys.executable, "-c", _STEP_SCRIPT, fold_execution], cwd=_REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_fold_step_on_a_four_device_mesh_equals_the_one_device_step():
    result = _run_step_script(4, "vmap")
    assert result["devices"] == 4
    assert result["mesh"] == {"fold": 2, "data": 2}
    assert result["kernel_devices"] == 4  # the new state lives on the whole mesh
    assert result["max_param_diff"] < 1e-5
    assert result["max_loss_diff"] < 1e-5


def test_one_device_mesh_runs_unchanged():
    result = _run_step_script(1, "map")
    assert result["mesh"] == {"fold": 1, "data": 1}
    assert result["max_param_diff"] == 0.0


def test_mesh_shapes_and_placement_errors():
    assert dict(sharding.make_mesh(8, jax.devices()[:1]).shape) == {"fold": 1, "data": 1}
    mesh = sharding.make_mesh(3)
    placed = sharding.shard_batch({"image": np.zeros((3, 4, 2, 2, 1), np.uint8)}, mesh)
    assert placed["image"].shape == (3, 4, 2, 2, 1)
    with pytest.raises(ValueError, match=r"\[K, B, \.\.\.\]"):
        sharding.shard_batch({"targets": np.zeros(3)}, mesh)
    with pytest.raises(ValueError, match="num_folds"):
        sharding.make_mesh(0)
