"""How this machine runs a model: resolved once at start-up, logged, never part of the model.

`config.model` says what a model is; `config.runtime` says how this machine may run it, and
every field may be pinned from the command line (`--config.runtime.conv=xla`) or left
'auto':

| field            | choices                                                       | 'auto'                                   |
| ---------------- | ------------------------------------------------------------- | ---------------------------------------- |
| `conv`           | `xla`, `winograd`, `xla_chunked_wgrad`, `matmul`, `xla_wgrad_matmul` (`conv.py`) | `xla` (Flax's own `nn.Conv`); on a CPU, measured |
| `fold_execution` | `unroll`, `sequential`, `vmap`, `map` (`fold_axis.py`)          | `vmap` off CPU or on several devices; on one CPU device, measured |
| `xla_options`    | `tuned` (`xla_cpu.py`), `default`                              | `default` off CPU; on a CPU, measured     |
| `compute_dtype`  | `float32`, `bfloat16`                                          | `float32`                                |
| `measure`        | a tuple of the fields above to measure when 'auto'            | `('fold_execution',)`                    |

On one CPU device, the 'auto' fields named in `measure` are chosen by timing the run's own
train step (its model, input shape, batch and fold count, on synthetic data) under each
candidate (`tune.py`); the first run of a step on a machine pays for it (about ten seconds
for the fold execution on a quiet 2-core CPU, more for each further field) and the choice is
cached for that machine, JAX version and step. Fields not measured get the CPU defaults
`xla`, `unroll` and `tuned`, the fastest on the 2-core AMD EPYC they were measured on
(docs/performance.md). The fold execution is measured by default because it is the choice
known to differ between CPUs: unrolled folds ran 1.09× faster per example than K separate
calls on that AMD EPYC and 0.92× as fast on an Intel Xeon.

Compiled programs are kept in XLA's persistent compilation cache (`<cache>/xla`, the same
cache root as the measured choices; unless the user set `jax_compilation_cache_dir`), so a
rerun, a resumed run or a sweep of the same model does not compile again (the default
job's train step: 23 s → 3 s on a loaded 2-core CPU).

The allocator is not a runtime choice: glibc reads its tunables only when a process starts.
`huge_pages` records whether the environment asks glibc for transparent huge pages
(`allocator.py`: `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`), which the user sets.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from muscle_jax.runtime import allocator, conv, fold_axis, tune, xla_cpu

AUTO = "auto"
XLA_OPTIONS = ("tuned", "default")
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PURPOSES = ("training", "inference")
# Without a measurement, a single CPU device runs these (the fastest on the 2-core AMD EPYC
# they were measured on, docs/performance.md).
CPU_DEFAULTS = {"conv": "xla", "fold_execution": "unroll", "xla_options": "tuned"}
# Folds of an inference batch on one CPU device: XLA's convolution with the folds one after
# another ran 4.9× faster than the vmapped matmul form (59.9 vs 12.3 frames/s, 6 folds,
# batch 128, side by side in one process).
CPU_INFERENCE_EXECUTION = "map"


def default_settings() -> ml_collections.ConfigDict:
    """The `config.runtime` section: everything 'auto', measured on a CPU."""
    settings = ml_collections.ConfigDict()
    settings.conv = AUTO
    settings.fold_execution = AUTO
    settings.xla_options = AUTO
    settings.compute_dtype = AUTO
    settings.measure = ("fold_execution",)
    return settings


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The resolved choices, and how each was made ('config', 'backend', 'measured', 'cached')."""

    backend: str
    conv: str
    fold_execution: str
    xla_options: str
    compute_dtype: str
    huge_pages: bool
    chosen_by: dict[str, str] = dataclasses.field(default_factory=dict)
    measurements: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def conv_module(self) -> Callable[..., Any]:
        """The convolution handed to a model as its `conv` argument."""
        return conv.conv_module(self.conv)

    @property
    def dtype(self) -> Any:
        """The computation dtype handed to a model (parameters stay float32)."""
        return COMPUTE_DTYPES[self.compute_dtype]

    def compiler_options(self, unrolled_folds: bool = False) -> dict[str, Any]:
        """XLA options for a program; with `unrolled_folds`, those of a program of K unrolled folds."""
        if self.xla_options == "default":
            return {}
        return xla_cpu.compiler_options(self.backend, unrolled_folds)

    def jit(self, fun: Callable, unrolled_folds: bool = False, **jit_kwargs) -> Callable:
        """`jax.jit` with this runtime's compiler options."""
        return jax.jit(fun, compiler_options=self.compiler_options(unrolled_folds) or None, **jit_kwargs)

    def fold_program(self, per_fold_fn: Callable, **jit_kwargs) -> fold_axis.FoldProgram:
        """`per_fold_fn` over the K folds as `fold_execution` says, jitted with this runtime's options."""
        return fold_axis.FoldProgram(per_fold_fn, self.fold_execution, self.jit, **jit_kwargs)

    def replace(self, **changes) -> "Runtime":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        how = ", ".join(f"{name} {getattr(self, name)} ({self.chosen_by.get(name, '?')})"
                        for name in ("conv", "fold_execution", "xla_options", "compute_dtype"))
        return f"runtime on {self.backend}: {how}; glibc huge pages {'on' if self.huge_pages else 'off'}"


def enable_compilation_cache() -> None:
    """Turns on XLA's persistent compilation cache in `<cache>/xla`, unless one is configured."""
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(tune.cache_root() / "xla"))


def validate(settings: ml_collections.ConfigDict) -> None:
    """A clear error naming the field for any value outside its choices."""
    allowed = {
        "conv": conv.FORMULATIONS,
        "fold_execution": fold_axis.EXECUTIONS,
        "xla_options": XLA_OPTIONS,
        "compute_dtype": tuple(COMPUTE_DTYPES),
    }
    for name, choices in allowed.items():
        value = settings[name]
        if value != AUTO and value not in choices:
            raise ValueError(f"runtime.{name} is {value!r}; allowed: 'auto', " + ", ".join(repr(c) for c in choices))
    unknown = [name for name in settings.measure if name not in tune.MEASURED_FIELDS]
    if isinstance(settings.measure, str) or unknown:
        raise ValueError(f"runtime.measure must be a tuple of fields among {tune.MEASURED_FIELDS}, "
                         f"got {settings.measure!r}")


def resolve(
    settings: ml_collections.ConfigDict,
    *,
    num_fold_devices: int = 1,
    purpose: str = "training",
    measure: Callable[[Runtime], float] | None = None,
    step_key: dict[str, Any] | None = None,
) -> Runtime:
    """The runtime for this process: pinned fields as given, 'auto' ones from the backend, or,
    on one CPU device, for those named in `settings.measure` when the caller gives a `measure`
    function (seconds per example of its step under a candidate runtime), by measurement
    cached under `step_key`."""
    validate(settings)
    enable_compilation_cache()
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    backend = jax.default_backend()
    on_one_cpu = backend == "cpu" and num_fold_devices == 1
    if settings.fold_execution == "sequential" and num_fold_devices > 1:
        raise ValueError(f"runtime.fold_execution 'sequential' runs on one device; the folds are split over {num_fold_devices}")
    if on_one_cpu:
        rules = dict(CPU_DEFAULTS)
        if purpose == "inference":
            rules["fold_execution"] = CPU_INFERENCE_EXECUTION
    else:
        rules = {"conv": "xla", "fold_execution": "vmap", "xla_options": "default"}
    rules["compute_dtype"] = "float32"
    chosen, chosen_by = {}, {}
    for name, rule in rules.items():
        pinned = settings[name] != AUTO
        chosen[name] = settings[name] if pinned else rule
        chosen_by[name] = "config" if pinned else "backend"
    runtime = Runtime(backend=backend, huge_pages=allocator.uses_huge_pages(), chosen_by=chosen_by, **chosen)
    auto_measurable = [name for name in tune.MEASURED_FIELDS if settings[name] == AUTO and name in settings.measure]
    # Several processes must run one program: a choice timed by each could differ between them.
    if on_one_cpu and purpose == "training" and measure is not None and auto_measurable and jax.process_count() == 1:
        runtime = tune.choose(runtime, auto_measurable, measure, step_key or {})
    logging.info("%s", runtime.describe())
    return runtime
