"""XLA compiler options that make the convolutional train step fast on CPU.

Measured on the 2-core development CPU with jax 0.10.2 (docs/performance.md, the pinned
benchmark network, one model):

- `xla_cpu_experimental_ynn_fusion_type=""`: XLA's CPU backend hands convolutions (with
  their neighbouring elementwise ops) to YNNPACK by default. Turning that off runs them
  through XLA's own (Eigen) convolution kernels: on this CPU 1.2–3.0× faster kernel
  gradients and 1.5–1.8× faster forward convolutions of the wide-image layers.
- `xla_cpu_use_fusion_emitters=False`: the newer fusion emitters compile a transpose
  fused with elementwise producers (relu(conv + bias) transposed for the kernel gradient)
  into a loop about 2× slower than the older emitters do.

They apply to the CPU backend only: `compiler_options` returns nothing for a GPU or TPU.
An option that a jaxlib does not know is an error at compile time, so a jax upgrade that
drops one fails loudly (tests/test_xla_cpu.py), never silently.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

CPU_COMPILER_OPTIONS: dict[str, Any] = {
    "xla_cpu_experimental_ynn_fusion_type": "",
    "xla_cpu_use_fusion_emitters": False,
}


def compiler_options(backend: str | None = None) -> dict[str, Any]:
    """The tuned options for `backend` (default: JAX's default backend); empty off CPU."""
    backend = backend or jax.default_backend()
    return dict(CPU_COMPILER_OPTIONS) if backend == "cpu" else {}


def jit(fun: Callable, options: dict[str, Any] | None = None, **jit_kwargs) -> Callable:
    """`jax.jit` with XLA compiler `options`: None means the tuned ones of the default backend
    (`compiler_options()`), {} XLA's defaults."""
    chosen = compiler_options() if options is None else options
    return jax.jit(fun, compiler_options=chosen or None, **jit_kwargs)
