"""How the K fold models of a run are executed: one program over a fold axis, or K calls.

Every per-fold function takes and returns pytrees whose leaves carry the fold axis K first
once mapped. The executions compute the same function and differ only in speed:

- 'vmap' batches the folds into one computation: the natural form on an accelerator and
  when the folds are split over several devices. On a CPU, XLA's convolutions under vmap
  become grouped convolutions, several times slower.
- 'map' runs the folds one after another inside one program (`lax.map`, a loop compiled
  once whatever K). On a CPU, XLA's kernel-gradient convolution inside a loop body ran
  50–150× slower than outside one (docs/performance.md), so training never picks it.
- 'unroll' writes the K per-fold programs side by side in one program: compile time grows
  with K, and XLA's CPU convolutions keep their single-model speed. On the 2-core AMD EPYC
  it was 1.09× faster per example than K separate calls; on an Intel Xeon (Emerald Rapids,
  2 vCPU) 0.92× (issue 16), which is why the runtime measures it against 'sequential'.
- 'sequential' compiles one fold's program and calls it K times per step, on the fold
  slices of the state: by construction as fast per example as K separate runs. One device
  only (the state's fold slices are taken on the host's device).

Measured on a 2-core CPU, default convnet at 64×64, 8 folds × 32, examples/s: unroll + XLA
conv 82.3, map + matmul conv 50.6, unroll + matmul 48.5, vmap + matmul 44.3, vmap + XLA
conv 15.1, map + XLA conv 2.7 (one process, side by side; before the XLA options of
`xla_cpu.py`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

EXECUTIONS = ("vmap", "map", "unroll", "sequential")
IN_ONE_PROGRAM = ("vmap", "map", "unroll")


def over_folds(per_fold_fn: Callable, execution: str) -> Callable:
    """The per-fold function mapped over a leading fold axis of all its arguments, as one
    traceable function ('vmap', 'map' or 'unroll'; 'sequential' is `FoldProgram`'s)."""
    if execution == "vmap":
        return jax.vmap(per_fold_fn)
    if execution == "map":
        return lambda *args: jax.lax.map(lambda fold_args: per_fold_fn(*fold_args), args)
    if execution == "unroll":
        def unrolled(*args):
            num_folds = jax.tree.leaves(args)[0].shape[0]
            outputs = [per_fold_fn(*jax.tree.map(lambda a: a[k], args)) for k in range(num_folds)]
            return jax.tree.map(lambda *per_fold: jnp.stack(per_fold), *outputs)

        return unrolled
    raise ValueError(f"runtime.fold_execution must be one of {IN_ONE_PROGRAM} inside one program, got {execution!r}")


def _unstack(tree: Any, num_folds: int) -> list[Any]:
    leaves, treedef = jax.tree.flatten(tree)
    per_leaf = [list(leaf) for leaf in leaves]  # K slices of each leaf
    return [jax.tree.unflatten(treedef, [slices[k] for slices in per_leaf]) for k in range(num_folds)]


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *per_fold: jnp.stack(per_fold), *trees)


class FoldProgram:
    """A per-fold function over K folds as the execution says, jitted by `jit`.

    Call it with fold-stacked arguments; `compile(*example_args)` compiles it ahead of the
    first call (for 'sequential', the one fold's program) and returns the callable to use.
    """

    def __init__(self, per_fold_fn: Callable, execution: str, jit: Callable[..., Callable], **jit_kwargs):
        if execution not in EXECUTIONS:
            raise ValueError(f"runtime.fold_execution must be one of {EXECUTIONS}, got {execution!r}")
        self.execution = execution
        if execution == "sequential":
            self._per_fold = jit(per_fold_fn, unrolled_folds=False, **jit_kwargs)
            self._program = None
        else:
            self._program = jit(over_folds(per_fold_fn, execution), unrolled_folds=execution == "unroll", **jit_kwargs)

    def _sequential(self, per_fold: Callable) -> Callable:
        def run(*args_K):
            num_folds = jax.tree.leaves(args_K)[0].shape[0]
            per_fold_args = _unstack(args_K, num_folds)
            return _stack([per_fold(*fold_args) for fold_args in per_fold_args])

        return run

    def lower(self, *example_args_K) -> Any:
        """The program lowered for arguments shaped like `example_args_K` (for 'sequential',
        one fold's program): what the model asks the compiler for."""
        if self._program is not None:
            return self._program.lower(*example_args_K)
        return self._per_fold.lower(*jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), example_args_K))

    def compile(self, *example_args_K) -> Callable:
        """The compiled program for arguments shaped like `example_args_K` (fold axis first)."""
        if self._program is not None:
            return self._program.lower(*example_args_K).compile()
        one_fold = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), example_args_K)
        return self._sequential(self._per_fold.lower(*one_fold).compile())

    def __call__(self, *args_K):
        if self._program is not None:
            return self._program(*args_K)
        return self._sequential(self._per_fold)(*args_K)
