"""XLA compiler options that make the convolutional train step fast on a CPU (`runtime.xla_options='tuned'`).

Measured on the 2-core development CPU with jax 0.10.2 (docs/performance.md, the pinned
benchmark network, one model):

- `xla_cpu_experimental_ynn_fusion_type=""`: XLA's CPU backend hands convolutions (with
  their neighbouring elementwise ops) to YNNPACK by default. Turning that off runs them
  through XLA's own (Eigen) convolution kernels: on this CPU 1.2–3.0× faster kernel
  gradients and 1.5–1.8× faster forward convolutions of the wide-image layers.
- `xla_cpu_use_fusion_emitters=False`: the newer fusion emitters compile a transpose
  fused with elementwise producers (relu(conv + bias) transposed for the kernel gradient)
  into a loop about 2× slower than the older emitters do.

Programs that unroll K folds side by side (`runtime.fold_execution='unroll'`) add
`xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED`: XLA's default CPU schedule
interleaves the K independent per-fold computations so that their thunks may run
concurrently, and so keeps the working memory of several folds alive at once. The
memory-optimised schedule runs them closer to one after another. On the 2-core CPU, 8
unrolled folds ran at the same examples/s within noise with 6× less temporary memory at
the default config (442 → 73 MiB) and a third less on the benchmark network (7,202 →
4,583 MiB; docs/performance.md). For one model it saved 4–15% and slowed the step (59.1
vs 68.4 and 67.0 vs 70.8 examples/s in two benchmark runs), so single-model programs keep
XLA's default schedule. The numbers are unchanged: only the order of independent operations
moves.

They apply to the CPU backend only: `compiler_options` returns nothing for a GPU or TPU.
An option that a jaxlib does not know is an error at compile time, so a jax upgrade that
drops one fails loudly (tests/test_runtime_xla_cpu.py), never silently. On another CPU the
runtime measures these options against XLA's defaults (`tune.py`) instead of assuming them.
"""

from __future__ import annotations

from typing import Any

import jax

CPU_COMPILER_OPTIONS: dict[str, Any] = {
    "xla_cpu_experimental_ynn_fusion_type": "",
    "xla_cpu_use_fusion_emitters": False,
}
UNROLLED_FOLDS_OPTIONS: dict[str, Any] = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def compiler_options(backend: str | None = None, unrolled_folds: bool = False) -> dict[str, Any]:
    """The tuned options for `backend` (default: JAX's default backend), with those for a
    program of unrolled folds when `unrolled_folds`; empty off CPU."""
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return {}
    return {**CPU_COMPILER_OPTIONS, **(UNROLLED_FOLDS_OPTIONS if unrolled_folds else {})}

