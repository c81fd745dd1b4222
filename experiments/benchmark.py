"""Training-speed benchmark of the real fold-stacked train step (`muscle_jax.train`).

    [GLIBC_TUNABLES=glibc.malloc.hugetlb=1] python experiments/benchmark.py --config=configs/benchmark.py \
        [--json=out.json] [--torch_python=/tmp/torchvenv/bin/python]

The step is the one training runs (`train.per_fold_train_step`, with the config's
augmentation: configs/benchmark.py turns it off, as the PyTorch reference has none), under the
runtime the config's `runtime` section resolves to (`muscle_jax/runtime`). Measures, in one
process and one after another (so they share the machine's load):
- the machine's peak: an n×n @ n×n matmul probe in the compute dtype (`runtime.compute_dtype`),
  and, on a device whose datasheet peak is known (NVIDIA H100, H200:
  `runtime.machine.DATASHEET_PEAKS`), each step's model FLOP utilisation against it;
- `single`: one model (the fold-stacked step with K = 1);
- `folds_vmapped` (and `folds_unroll`, ...): K fold models in one jitted step, for each
  `benchmark.fold_executions` entry (`runtime.fold_execution`: 'vmap' batches the folds,
  'unroll' writes them side by side);
- `folds_sequential`: K single-model steps one after another (K separate calls);
- `single_by_conv`: the single model with each `benchmark.single_convs` formulation
  (`runtime.conv`, muscle_jax/runtime/conv.py);
- `single_by_compiler_options`: the single model compiled with each `benchmark.
  compiler_option_variants` entry (the XLA CPU options lever, `muscle_jax/runtime/xla_cpu.py`),
  and `folds_unroll_by_compiler_options` (etc.): the K-fold programs with each `benchmark.
  fold_compiler_option_variants` entry (on a CPU only: the options are XLA CPU's);
- `input_pipeline`: batches from the configured tfds dataset through grain, without a model;
- with --torch_python, `pytorch_reference`: the same network and step in PyTorch
  (experiments/pytorch_reference.py) run in that interpreter with the same allocator setting
  as this process (glibc's huge pages when GLIBC_TUNABLES asks for them,
  muscle_jax/runtime/allocator.py), taking turns with the JAX
  single-model step (`single_beside_pytorch`) for `benchmark.pytorch_rounds` rounds, so that
  a machine whose speed drifts during the run (a shared VM's does) slows both alike; and
  `pytorch_reference_other_allocator` once with the other setting, so that the allocator's
  effect on PyTorch is on record.

Each step measurement: compile time, warm-up steps (excluded), `repeats` timed steps;
examples/s as median, min and max over the repeats; process CPU seconds per example (a
figure less sensitive than wall time to other processes on a shared machine); model FLOPs
per example from XLA's cost analysis; achieved FLOP/s (model FLOPs × examples/s) and its
fraction of the measured matmul peak (and of the datasheet peak where known: the model FLOP
utilisation); memory from XLA's memory analysis and the process's
peak RSS. The model's FLOPs are those of its step with direct convolutions (runtime.conv
'xla'), whatever formulation runs it: Winograd computes the same function with fewer
multiplications, and counting those would make the faster step look less efficient. Each
measurement also records the FLOPs XLA counts for the formulation it ran
(`executed_flops_per_example`).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))  # `configs` is importable when run from anywhere

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from muscle_jax import cli, runtime, sharding, train  # noqa: E402
from muscle_jax import folds as folds_lib  # noqa: E402
from muscle_jax.data import pipeline  # noqa: E402
from muscle_jax.models import create_model, family_knobs  # noqa: E402
from muscle_jax.runtime import allocator, fold_axis, machine, xla_cpu  # noqa: E402


def define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "configs/benchmark.py", lock_config=True)
    flags.DEFINE_string("json", "", "Also write the figures to this JSON file.")
    flags.DEFINE_string("torch_python", "", "A Python with torch==2.13.0 installed; runs experiments/pytorch_reference.py.")
    flags.mark_flags_as_required(["config"])


def machine_info() -> dict[str, Any]:
    """CPU model, core count, jax version and devices: what the figures were measured on."""
    return {**machine.describe(), "free_page_reporting": allocator.page_reporting_settings()}


class Timings(NamedTuple):
    """Per timed call: wall and process-CPU seconds, and the MiB of free memory the kernel
    reported to its host meanwhile (None where it does not count them, allocator.py)."""

    wall_s: list[float]
    cpu_s: list[float]
    reported_to_host_mib: list[float] | None


def timed_repeats(run_step: Callable[[], None], warmup_steps: int, repeats: int) -> Timings:
    """`repeats` timed calls of `run_step`, after `warmup_steps` untimed calls."""
    for _ in range(warmup_steps):
        run_step()
    wall, cpu, reported = [], [], []
    for _ in range(repeats):
        reported_start = allocator.memory_reported_to_host_kib()
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        run_step()
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
        reported_end = allocator.memory_reported_to_host_kib()
        if reported_start is not None and reported_end is not None:
            reported.append((reported_end - reported_start) / 1024)
    return Timings(wall, cpu, reported if len(reported) == repeats else None)


def host_reclaim_figures(reported_to_host_mib: list[float] | None) -> dict[str, Any]:
    """How many timed steps overlapped the kernel handing freed memory back to its host (a
    virtual machine's free page reporting), and how much: re-faulting hundreds of MiB slows a
    step, which the mean rate shows and the median hides. None where the kernel does not
    count it."""
    if reported_to_host_mib is None:
        return {"steps_with_memory_reported_to_host": None, "memory_reported_to_host_mib": None}
    return {
        "steps_with_memory_reported_to_host": sum(mib > 0 for mib in reported_to_host_mib),
        "memory_reported_to_host_mib": sum(reported_to_host_mib),
    }


def throughput(wall_s: list[float], cpu_s: list[float], examples_per_call: int) -> dict[str, float]:
    """examples/s (median, min, max over the repeats, and the mean rate: all examples over all
    the time, which a median hides periodic slow steps from), median step time and CPU seconds
    per example."""
    rates = [examples_per_call / s for s in wall_s]
    median_rate = statistics.median(rates)
    return {
        "examples_per_s": median_rate,
        "examples_per_s_mean": examples_per_call * len(wall_s) / sum(wall_s),
        "examples_per_s_min": min(rates),
        "examples_per_s_max": max(rates),
        "spread": (max(rates) - min(rates)) / median_rate,
        "step_s": statistics.median(wall_s),
        "cpu_s_per_example": statistics.median(cpu_s) / examples_per_call,
        "repeats": len(wall_s),
    }


def matmul_peak(n: int, repeats: int, dtype=jnp.float32) -> dict[str, float]:
    """Best and median FLOP/s of a jitted n×n @ n×n matmul in `dtype`: the machine's measured peak.

    Timed with XLA's default options and with the tuned ones; the faster sets the peak.
    """
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    wall: list[float] = []
    for options in ({}, xla_cpu.compiler_options()):
        matmul = jax.jit(jnp.matmul, compiler_options=options or None)
        wall += timed_repeats(lambda: matmul(a, b).block_until_ready(), 2, max(repeats, 5)).wall_s
    flops = 2.0 * n**3
    return {"flops_per_s": flops / min(wall), "flops_per_s_median": flops / statistics.median(wall), "n": n,
            "dtype": jnp.dtype(dtype).name}


def add_datasheet_fractions(results: dict[str, Any], datasheet_flops_per_s: float) -> None:
    """Every step measurement's achieved model FLOP/s as a fraction of the datasheet peak
    (model FLOP utilisation), in place."""
    for value in results.values():
        if isinstance(value, dict):
            if "achieved_flops_per_s" in value:
                value["fraction_of_datasheet_peak"] = value["achieved_flops_per_s"] / datasheet_flops_per_s
            else:
                add_datasheet_fractions(value, datasheet_flops_per_s)


def memory_figures(compiled) -> dict[str, int]:
    """XLA's static memory plan of a compiled step, and the process's peak RSS so far."""
    figures: dict[str, int] = {"process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    analysis = compiled.memory_analysis()
    if analysis is not None:
        for name in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes"):
            figures[name] = int(getattr(analysis, name))
        figures["xla_peak_bytes"] = (
            figures["argument_size_in_bytes"] + figures["output_size_in_bytes"]
            + figures["temp_size_in_bytes"] - figures["alias_size_in_bytes"]
        )
    return figures


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def synthetic_batch(num_folds: int, batch_size: int, image_hw: tuple[int, int], num_targets: int, seed: int):
    """uint8 images [K, B, H, W, 1] and float32 targets [K, B, T], as the pipeline yields them."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_folds, batch_size, *image_hw, 1), dtype=np.uint8)
    targets = rng.standard_normal((num_folds, batch_size, num_targets)).astype(np.float32)
    return jax.device_put(images), jax.device_put(targets)


class StepBench:
    """The real fold-stacked train step of a config (`train.per_fold_train_step`, with the
    config's augmentation), compiled for K folds run as `rt.fold_execution` with `rt`'s
    convolution, in one program ('vmap', 'map', 'unroll')."""

    def __init__(self, config, rt: runtime.Runtime, num_folds: int, compiler_options: dict[str, Any] | None = None):
        """XLA `compiler_options`: None for the runtime's own (what training uses), else these."""
        bench = config.benchmark
        self.examples_per_step = num_folds * config.train.batch_size
        mesh = sharding.make_mesh(num_folds, jax.devices()[:1])
        self.state = train.build_state(config, rt, bench.num_targets, num_folds, (*bench.image_hw, 1), mesh)
        self.images, self.targets = synthetic_batch(
            num_folds, config.train.batch_size, tuple(bench.image_hw), bench.num_targets, config.seed
        )
        self.fold_indices = jnp.arange(num_folds)
        if compiler_options is None:
            jit = rt.jit
        else:
            jit = lambda fun, unrolled_folds, **kwargs: jax.jit(fun, compiler_options=compiler_options or None, **kwargs)  # noqa: E731
        program = fold_axis.FoldProgram(train.per_fold_train_step(config.seed, config.augment), rt.fold_execution, jit,
                                        donate_argnums=0)
        start = time.perf_counter()
        self.compiled = program.compile(self.state, self.images, self.targets, self.fold_indices)
        self.compile_s = time.perf_counter() - start
        self.flops_per_step = float(self.compiled.cost_analysis().get("flops", float("nan")))

    def run(self) -> None:
        """One step; the donated state is replaced by the new one."""
        self.state, metrics = self.compiled(self.state, self.images, self.targets, self.fold_indices)
        metrics["loss"].block_until_ready()


def step_figures(timings: Timings, examples_per_call, step: StepBench, flops_per_example, peak_flops_per_s):
    """Throughput, achieved FLOP/s (model FLOPs × examples/s), fraction of peak, memory, steps
    during which the host took freed memory back, and the FLOPs per example XLA counts for
    the program `step` that ran."""
    figures = throughput(timings.wall_s, timings.cpu_s, examples_per_call)
    figures["compile_s"] = step.compile_s
    figures["executed_flops_per_example"] = step.flops_per_step / step.examples_per_step
    figures["achieved_flops_per_s"] = flops_per_example * figures["examples_per_s"]
    figures["fraction_of_peak"] = figures["achieved_flops_per_s"] / peak_flops_per_s
    figures["memory"] = memory_figures(step.compiled)
    figures.update(host_reclaim_figures(timings.reported_to_host_mib))
    return figures


def direct_conv_flops_per_example(config, rt: runtime.Runtime, single: StepBench) -> float:
    """The model's FLOPs per example: XLA's count for its single-model step with direct
    convolutions (`runtime.conv` 'xla') — `single`'s own when it is that step, else compiled anew."""
    if rt.conv == "xla":
        return single.flops_per_step / single.examples_per_step
    direct = StepBench(config, rt.replace(conv="xla"), 1)
    return direct.flops_per_step / config.train.batch_size


def _option_value(text: str) -> bool | int | str:
    """An XLA option's value as written in a config string: true/false, an integer, or text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return int(text) if text.lstrip("-").isdigit() else text


def compiler_option_variant(name: str, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """XLA options named in `benchmark.*compiler_option_variants`: 'tuned' (what training uses
    for the program, `tuned`; default: the single-model set), 'xla_defaults' (none), one option
    of `xla_cpu.CPU_COMPILER_OPTIONS` alone by its name, '+<option>=<value>' (the tuned set
    with that option added or changed) or '-<option>' (the tuned set without it)."""
    tuned = xla_cpu.compiler_options() if tuned is None else tuned
    if name == "tuned":
        return dict(tuned)
    if name == "xla_defaults":
        return {}
    if name in xla_cpu.CPU_COMPILER_OPTIONS:
        return {name: xla_cpu.CPU_COMPILER_OPTIONS[name]}
    if name.startswith("+") and "=" in name:
        option, value = name[1:].split("=", 1)
        return {**tuned, option: _option_value(value)}
    if name.startswith("-") and len(name) > 1:  # dropping an option the program lacks: the tuned set
        return {option: value for option, value in tuned.items() if option != name[1:]}
    raise ValueError(
        f"benchmark compiler option variant {name!r}: use 'tuned', 'xla_defaults', '+<option>=<value>', "
        f"'-<option>' or one of {sorted(xla_cpu.CPU_COMPILER_OPTIONS)} alone"
    )


def input_pipeline_figures(config) -> dict[str, Any]:
    """examples/s of the configured dataset's training batches through grain, with no model."""
    start = time.perf_counter()
    source, info = pipeline.load_source(config.dataset)
    ready_s = time.perf_counter() - start
    index = pipeline.read_index(source, tuple(config.dataset.targets))
    folds = folds_lib.make_folds(
        index.groups(config.folds.group_by), config.folds.group_by, config.folds.num_folds, config.folds.max_train_groups
    )
    stats = pipeline.label_stats(index.targets_NxT, folds.train_KxN)
    warmup, steps = config.benchmark.warmup_steps + 1, config.benchmark.input_pipeline_steps
    batches = pipeline.train_batches(
        source, index, folds.train_KxN, stats, config.train.batch_size, config.seed, 0, warmup + steps,
        config.train.input_threads,
    )
    for _ in range(warmup):
        batch = next(batches)
    wall, cpu = [], []
    for _ in range(steps):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        batch = next(batches)
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    examples_per_batch = int(np.prod(batch["image"].shape[:2]))
    # Batches are prefetched by grain's threads: the rate is total examples over total time.
    figures = throughput(wall, cpu, examples_per_batch)
    figures["examples_per_s"] = examples_per_batch * steps / sum(wall)
    figures.update(
        dataset=info.full_name, dataset_ready_s=ready_s, batch_shape=list(batch["image"].shape),
        input_threads=config.train.input_threads,
    )
    return figures


def pytorch_reference(config, torch_python: str, huge_pages: bool) -> dict[str, Any]:
    """experiments/pytorch_reference.py with the config's network and batch, in `torch_python`,
    with or without the allocator setting of muscle_jax/allocator.py."""
    bench = config.benchmark
    knobs = family_knobs(config.model)
    if knobs["name"] != "convnet" or knobs["norm"] != "none" or knobs["input_norm"] != "none" or config.augment.enabled:
        raise ValueError("the PyTorch reference is the plain convnet without normalisation or augmentation; "
                         "set model.name=convnet, model.norm=none, model.input_norm=none, augment.enabled=False")
    if tuple(bench.image_hw)[0] != tuple(bench.image_hw)[1]:
        raise ValueError(f"benchmark.image_hw must be square for the PyTorch reference, got {bench.image_hw}")
    command = [
        torch_python, str(_REPO / "experiments" / "pytorch_reference.py"),
        "--channels", *map(str, knobs["channels"]), "--hidden", str(knobs["hidden"]),
        "--dropout", str(knobs["dropout"]), "--num_targets", str(bench.num_targets),
        "--image_size", str(bench.image_hw[0]), "--batch_size", str(config.train.batch_size),
        "--warmup", str(bench.warmup_steps + 1), "--repeats", str(max(bench.repeats, 3)),
    ]
    environ = (allocator.with_huge_pages if huge_pages else allocator.without_huge_pages)(dict(os.environ))
    completed = subprocess.run(command, capture_output=True, text=True, env=environ)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update(host_reclaim_figures(result["reported_to_host_mib"]))
    return result


def pooled(rounds: list[Timings]) -> Timings:
    """The timed steps of several rounds as one set (reclaims only where every round counted them)."""
    reported = [r.reported_to_host_mib for r in rounds]
    return Timings(
        [s for r in rounds for s in r.wall_s],
        [s for r in rounds for s in r.cpu_s],
        None if None in reported else [mib for r in reported for mib in r],
    )


def jax_over_pytorch(jax_figures: dict[str, Any], torch_figures: dict[str, Any]) -> dict[str, float]:
    """JAX's examples/s over PyTorch's, by the median and by the mean rate."""
    return {
        "jax_single_over_pytorch": jax_figures["examples_per_s"] / torch_figures["examples_per_s"],
        "jax_single_over_pytorch_mean": jax_figures["examples_per_s_mean"] / torch_figures["examples_per_s_mean"],
    }


def beside_pytorch(config, single: StepBench, torch_python: str, huge_pages: bool, flops_per_example, peak_flops_per_s):
    """JAX's single-model step and PyTorch's, taking turns for `benchmark.pytorch_rounds` rounds
    (`repeats` timed steps each, after warm-up), so that both meet the same states of a shared
    machine; each side's steps pooled over the rounds. Returns (JAX figures, PyTorch figures),
    the latter with the ratios, pooled and round by round."""
    bench = config.benchmark
    batch_size = config.train.batch_size
    jax_rounds, torch_results, ratio_by_round = [], [], []
    for round_index in range(bench.pytorch_rounds):
        jax_rounds.append(timed_repeats(single.run, bench.warmup_steps, bench.repeats))
        jax_rate = throughput(jax_rounds[-1].wall_s, jax_rounds[-1].cpu_s, batch_size)["examples_per_s"]
        torch_results.append(pytorch_reference(config, torch_python, huge_pages))
        ratio_by_round.append(jax_rate / torch_results[-1]["examples_per_s"])
        logging.info(
            "round %d: JAX single %.1f, PyTorch %.1f examples/s", round_index + 1, jax_rate,
            torch_results[-1]["examples_per_s"],
        )
    jax_figures = step_figures(pooled(jax_rounds), batch_size, single, flops_per_example, peak_flops_per_s)
    torch_steps = pooled([Timings(r["step_s"], r["cpu_s"], r["reported_to_host_mib"]) for r in torch_results])
    torch_figures = {
        **{key: torch_results[-1][key] for key in ("framework", "threads", "machine", "batch_size", "huge_pages")},
        **throughput(torch_steps.wall_s, torch_steps.cpu_s, batch_size),
        **host_reclaim_figures(torch_steps.reported_to_host_mib),
        "rounds": bench.pytorch_rounds,
        "jax_single_over_pytorch_by_round": ratio_by_round,
    }
    torch_figures.update(jax_over_pytorch(jax_figures, torch_figures))
    return jax_figures, torch_figures


def fold_figures(config, rt: runtime.Runtime, execution: str, options, flops_per_example, peak, available_at_start):
    """K fold models in one step run as `execution`, compiled with XLA `options`; on a CPU host,
    recorded as skipped (with the reason) when XLA's plan needs too much of its memory."""
    bench = config.benchmark
    stacked = StepBench(config, rt.replace(fold_execution=execution), bench.num_folds, compiler_options=options)
    needed = memory_figures(stacked.compiled).get("xla_peak_bytes")
    if (
        jax.default_backend() == "cpu" and needed and available_at_start
        and needed > bench.max_memory_fraction * available_at_start
    ):
        # A shared host must not be pushed into swapping or the OOM killer: record why, run nothing.
        figures = {
            "examples_per_s": None, "compile_s": stacked.compile_s,
            "skipped": f"needs {needed / 2**30:.1f} GiB, {available_at_start / 2**30:.1f} GiB available at the start "
            f"(limit benchmark.max_memory_fraction={bench.max_memory_fraction})",
            "memory": memory_figures(stacked.compiled),
        }
    else:
        timings = timed_repeats(stacked.run, bench.warmup_steps, bench.repeats)
        figures = step_figures(
            timings, bench.num_folds * config.train.batch_size, stacked, flops_per_example, peak["flops_per_s"]
        )
    figures["fold_execution"] = execution
    figures["compiler_options"] = options
    return figures


def run_benchmark(config, torch_python: str = "") -> dict[str, Any]:
    """All figures of the module docstring, as one JSON-able dict."""
    bench = config.benchmark
    num_folds, batch_size = bench.num_folds, config.train.batch_size
    available_at_start = available_memory_bytes()
    rt = runtime.resolve(config.runtime)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "runtime": rt.to_json(),
        "huge_pages": rt.huge_pages,
        "available_memory_bytes_at_start": available_at_start,
        "compiler_options": rt.compiler_options(),
        "compiler_options_unrolled_folds": rt.compiler_options(unrolled_folds=True),
        "load_average_start": os.getloadavg(),
        "model": family_knobs(config.model),
        "augment": config.augment.enabled,
        "optimizer": config.train.optimizer,
        "batch_size_per_fold": batch_size,
        "num_folds": num_folds,
        "image_hw": list(bench.image_hw),
        "num_targets": bench.num_targets,
    }
    peak = matmul_peak(bench.peak_matmul_size, bench.repeats, rt.dtype)
    results["peak_flops_per_s"] = peak["flops_per_s"]
    results["peak_probe"] = peak
    results["datasheet_peak"] = machine.datasheet_peak(jax.devices()[0].device_kind, rt.compute_dtype)
    logging.info("matmul peak %.1f GFLOP/s (%s)", peak["flops_per_s"] / 1e9, peak["dtype"])

    single_rt = rt.replace(fold_execution="vmap")  # K = 1: one model, compiled with single-model options
    single = StepBench(config, single_rt, 1)
    flops_per_example = direct_conv_flops_per_example(config, single_rt, single)
    results["model_flops_per_example"] = flops_per_example
    timings = timed_repeats(single.run, bench.warmup_steps, bench.repeats)
    results["single"] = step_figures(
        timings, batch_size, single, flops_per_example, peak["flops_per_s"]
    )
    results["compile_s"] = {"single": single.compile_s}
    logging.info("single: %.1f examples/s", results["single"]["examples_per_s"])

    # The single model with other convolution formulations (the formulation lever, same run).
    results["single_by_conv"] = {rt.conv: results["single"]}
    for conv in bench.single_convs:
        if conv == rt.conv:
            continue
        other = StepBench(config, single_rt.replace(conv=conv), 1)
        timings = timed_repeats(other.run, bench.warmup_steps, bench.repeats)
        results["single_by_conv"][conv] = step_figures(timings, batch_size, other, flops_per_example, peak["flops_per_s"])
        logging.info("single, conv=%s: %.1f examples/s", conv, results["single_by_conv"][conv]["examples_per_s"])
        del other
        gc.collect()  # dead arrays go before the next program allocates its own

    # The single model compiled with each set of XLA options (the compiler-options lever, same
    # run); the options are XLA CPU's, so elsewhere there is no lever to measure.
    results["single_by_compiler_options"] = {"tuned": results["single"]}
    for name in bench.compiler_option_variants if rt.backend == "cpu" else ():
        options = compiler_option_variant(name)
        if options == xla_cpu.compiler_options():
            continue
        other = StepBench(config, single_rt, 1, compiler_options=options)
        timings = timed_repeats(other.run, bench.warmup_steps, bench.repeats)
        results["single_by_compiler_options"][name] = step_figures(
            timings, batch_size, other, flops_per_example, peak["flops_per_s"]
        )
        results["single_by_compiler_options"][name]["compiler_options"] = options
        logging.info("single, compiler options %s: %.1f examples/s", name, results["single_by_compiler_options"][name]["examples_per_s"])
        del other
        gc.collect()

    # K models one after another: K separate states, each stepped by the single-model program.
    one_device = sharding.make_mesh(1, jax.devices()[:1])
    model = create_model(config.model, bench.num_targets, single_rt.conv_module, single_rt.dtype)

    def other_model(seed: int):  # in the single state's own TrainState, so its compiled program takes it
        fresh = train.create_fold_state(model, single.state.tx, seed, 1, (*bench.image_hw, 1))
        return sharding.shard_fold_state(single.state.replace(step=fresh.step, params=fresh.params,
                                                              opt_state=fresh.opt_state), one_device)

    states = [single.state] + [other_model(config.seed + k) for k in range(1, num_folds)]

    def sequential_round() -> None:
        for k in range(num_folds):
            single.state = states[k]
            single.run()
            states[k] = single.state

    timings = timed_repeats(sequential_round, bench.warmup_steps, bench.repeats)
    results["folds_sequential"] = step_figures(
        timings, num_folds * batch_size, single, flops_per_example, peak["flops_per_s"]
    )
    logging.info("folds_sequential: %.1f examples/s", results["folds_sequential"]["examples_per_s"])
    states.clear()
    gc.collect()

    for execution in bench.fold_executions:
        key = f"folds_{'vmapped' if execution == 'vmap' else execution}"
        tuned = xla_cpu.compiler_options(unrolled_folds=execution == "unroll")
        results[f"{key}_by_compiler_options"] = {}
        for name in ("tuned", *(bench.fold_compiler_option_variants if rt.backend == "cpu" else ())):
            options = compiler_option_variant(name, tuned)
            if name != "tuned" and options == tuned:
                continue
            figures = fold_figures(config, rt, execution, options, flops_per_example, peak, available_at_start)
            results[f"{key}_by_compiler_options"][name] = figures
            if name == "tuned":
                results[key] = figures
                results["compile_s"][key] = figures["compile_s"]
            logging.info("%s, compiler options %s: %s examples/s", key, name, figures["examples_per_s"])
            gc.collect()

    if torch_python:
        # Like for like: PyTorch under this process's allocator setting, taking turns with the
        # JAX step; the other allocator setting once, for the record.
        results["single_beside_pytorch"], results["pytorch_reference"] = beside_pytorch(
            config, single, torch_python, results["huge_pages"], flops_per_example, peak["flops_per_s"]
        )
        other = pytorch_reference(config, torch_python, not results["huge_pages"])
        results["pytorch_reference_other_allocator"] = {**other, **jax_over_pytorch(results["single"], other)}
    results["input_pipeline"] = input_pipeline_figures(config)
    results["load_average_end"] = os.getloadavg()
    if results["datasheet_peak"]:
        add_datasheet_fractions(results, results["datasheet_peak"]["flops_per_s"])
    return results


def reclaimed_steps(figures: dict[str, Any]) -> str:
    """'reclaimed/timed': steps during which the host took freed memory back, '-' where not counted."""
    if figures.get("steps_with_memory_reported_to_host") is None:
        return "-"
    return f"{figures['steps_with_memory_reported_to_host']}/{figures['repeats']}"


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A readable table of the headline figures."""
    peak = results["peak_flops_per_s"]
    rows = {key: value for key, value in results.items() if key != "single_beside_pytorch"}
    rows.update({f"single[{conv}]": value for conv, value in results["single_by_conv"].items()})
    for key in [key for key in results if key.endswith("_by_compiler_options")]:
        program = key.removesuffix("_by_compiler_options")
        rows.update({f"{program}[{name}]": value for name, value in results[key].items() if name != "tuned"})
    if "single_beside_pytorch" in results:  # last, right above the PyTorch row it took turns with
        rows["single_beside_pytorch"] = results["single_beside_pytorch"]
    width = max(len(label) for label in [*rows, "pytorch_reference_other_allocator"])
    lines = [
        f"machine: {results['machine']['cpu_model']} ({results['machine']['cpu_count']} cores), "
        f"jax {results['machine']['jax']} on {results['machine']['backend']}; "
        f"load average {results['load_average_start'][0]:.1f} → {results['load_average_end'][0]:.1f}",
        f"XLA options {results['compiler_options'] or 'none'} (unrolled folds: "
        f"{results['compiler_options_unrolled_folds'] or 'none'}); allocator "
        f"{'huge pages (glibc.malloc.hugetlb=1)' if results['huge_pages'] else 'glibc default'}; "
        f"free page reporting {results['machine']['free_page_reporting'] or 'none'} (column 'reclaimed': timed "
        "steps during which the kernel handed freed memory to the VM's host; re-faulting much of it slows a step)",
        f"devices {', '.join(sorted(set(results['machine']['devices'])))}; compute dtype "
        f"{results['runtime']['compute_dtype']}; the fold execution training picks here: "
        f"{results['runtime']['fold_execution']} ({results['runtime']['chosen_by'].get('fold_execution')})",
        f"matmul peak {peak / 1e9:.1f} GFLOP/s ({results['peak_probe']['dtype']}); model "
        f"{results['model_flops_per_example'] / 1e9:.3f} GFLOP per example "
        f"(forward + backward + update, direct convolutions; XLA counts "
        f"{results['single']['executed_flops_per_example'] / 1e9:.3f} for runtime.conv {results['runtime']['conv']!r})",
    ]
    datasheet = results.get("datasheet_peak")
    if datasheet:
        lines.append(f"datasheet peak ({datasheet['entry']}, {results['runtime']['compute_dtype']}, dense): "
                     f"{datasheet['flops_per_s'] / 1e12:.1f} TFLOP/s; column 'MFU': model FLOP/s over it")
    lines.append(f"{'measurement':{width}s} {'examples/s':>10s} {'[min – max]':>16s} {'mean':>6s} {'CPU ms/ex':>9s} "
                 f"{'GFLOP/s':>8s} {'of peak':>7s} {'compile s':>9s} {'reclaimed':>9s}" + (f" {'MFU':>7s}" if datasheet else ""))
    for key, value in rows.items():
        if isinstance(value, dict) and "skipped" in value:
            lines.append(f"{key:{width}s} skipped: {value['skipped']}")
        if isinstance(value, dict) and "achieved_flops_per_s" in value:
            lines.append(
                f"{key:{width}s} {value['examples_per_s']:10.1f} "
                f"{'[' + format(value['examples_per_s_min'], '.1f') + ' – ' + format(value['examples_per_s_max'], '.1f') + ']':>16s} "
                f"{value['examples_per_s_mean']:6.1f} "
                f"{value['cpu_s_per_example'] * 1e3:9.1f} {value['achieved_flops_per_s'] / 1e9:8.1f} "
                f"{value['fraction_of_peak']:7.1%} {value['compile_s']:9.1f} {reclaimed_steps(value):>9s}"
                + (f" {value['fraction_of_datasheet_peak']:7.2%}" if datasheet else "")
            )
    for key in ("pytorch_reference", "pytorch_reference_other_allocator"):
        if key not in results:
            continue
        torch_ref = results[key]
        allocator_setting = "huge pages" if torch_ref["huge_pages"] else "glibc default allocator"
        if "rounds" in torch_ref:
            against = f"{torch_ref['rounds']} rounds in turn with single_beside_pytorch: "
            by_round = " (rounds " + " / ".join(f"{r:.2f}" for r in torch_ref["jax_single_over_pytorch_by_round"]) + ")"
        else:
            against, by_round = "against single: ", ""
        lines.append(
            f"{key:{width}s} {torch_ref['examples_per_s']:10.1f} "
            f"{'[' + format(torch_ref['examples_per_s_min'], '.1f') + ' – ' + format(torch_ref['examples_per_s_max'], '.1f') + ']':>16s} "
            f"{torch_ref['examples_per_s_mean']:6.1f} "
            f"{torch_ref['cpu_s_per_example'] * 1e3:9.1f} {'':26s} {reclaimed_steps(torch_ref):>9s}   "
            f"({torch_ref['framework']}, {allocator_setting}; {against}JAX / PyTorch = "
            f"{torch_ref['jax_single_over_pytorch']:.2f}{by_round}, means {torch_ref['jax_single_over_pytorch_mean']:.2f})"
        )
    pipe = results["input_pipeline"]
    lines.append(
        f"{'input_pipeline':{width}s} {pipe['examples_per_s']:10.1f}   ({pipe['dataset']}, batches {pipe['batch_shape']}, "
        f"{pipe['input_threads']} threads)"
    )
    return lines


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.INFO)
    results = run_benchmark(flags.FLAGS.config, flags.FLAGS.torch_python)
    print("\n".join(summary_lines(results)))
    if flags.FLAGS.json:
        path = Path(flags.FLAGS.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main, define_flags)
