"""Paper scale on paper: the step of `configs/paper.py` measured here for a few steps, and the
whole run's time projected on this machine, on one GPU and on several hosts.

    python experiments/paper_scale.py --config=configs/paper.py --json=runs/paper_scale.json

Measured (the run's own train step — its model, augmentation, optimiser, batch and input
shape — on synthetic uint8 images, K = the phantom preset's participants, one fold held out
each): seconds and process CPU seconds per step after one untimed step, XLA's memory plan,
the train state's size and the process's peak RSS, and the model's FLOPs per step (XLA's
count with direct convolutions, as `experiments/benchmark.py` counts them). On a CPU the K
folds are stepped one after another (`runtime.fold_execution='sequential'`, one fold's
program K times: what K separate runs cost, and the least memory); `--fold_execution`
changes that.

Projected, and labelled so (nothing here ran on a GPU):
- this machine: the measured step time × `train.num_steps`;
- one GPU: model FLOPs per step / (the datasheet's dense peak × `--gpu_utilisation`), for
  each device of `runtime.machine.DATASHEET_PEAKS` and each compute dtype (float32 on TF32
  tensor cores, bfloat16);
- several hosts of `--gpus_per_host` GPUs each: the one-GPU step split evenly over every GPU
  (each fold's batch over the 'data' axis; `gcd(#GPUs, K)` devices on 'fold'), plus a ring
  all-reduce of the fold-stacked gradients over `--interconnect_gbit_s` between hosts.
These count the model's arithmetic only. With `--input_participants=N` the input pipeline is
measured too, on the config's dataset cut to N participants (records of the same form: the
same frame, mask and ROI sizes; built on first use): the records per second one process reads
with `train.input_threads` threads, against the records per second each projection needs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from muscle_jax import cli, runtime, sharding, train  # noqa: E402
from muscle_jax import folds as folds_lib  # noqa: E402
from muscle_jax.data import pipeline, ultrasound_states  # noqa: E402
from muscle_jax.runtime import machine  # noqa: E402


def define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "configs/paper.py", lock_config=True)
    flags.DEFINE_integer("steps", 3, "Timed steps (after one untimed step).")
    flags.DEFINE_string("fold_execution", "sequential", "How the K folds run in the measured step (runtime.fold_execution).")
    flags.DEFINE_float("gpu_utilisation", 0.25, "Model FLOP utilisation assumed for the GPU projection (a fraction).")
    flags.DEFINE_multi_integer("hosts", [1, 2, 4], "Host counts of the several-hosts projection.")
    flags.DEFINE_integer("gpus_per_host", 4, "GPUs per host in the several-hosts projection.")
    flags.DEFINE_float("interconnect_gbit_s", 100.0, "Host-to-host bandwidth assumed for the all-reduce, Gbit/s.")
    flags.DEFINE_integer("input_participants", 0, "Also measure the input pipeline on the dataset cut to this many "
                         "participants (0: not measured).")
    flags.DEFINE_integer("input_steps", 10, "Batches timed for the input pipeline (after 2 untimed).")
    flags.DEFINE_string("json", "", "Also write the figures to this JSON file.")
    flags.mark_flags_as_required(["config"])


def paper_shape(config) -> tuple[int, tuple[int, int, int]]:
    """(K folds, model input H×W×S) of a phantom config with leave-one-participant-out folds."""
    builder_config = next(c for c in ultrasound_states.UltrasoundStates.BUILDER_CONFIGS
                          if c.name == config.dataset.builder_config)
    preset = ultrasound_states.phantom_config_of(builder_config)
    preset = dataclasses.replace(preset, **dict(config.dataset.phantom_overrides))
    if config.folds.num_folds or config.folds.group_by != "participant":
        raise ValueError("paper_shape assumes folds.num_folds=0 and folds.group_by='participant' (one fold per participant)")
    return preset.num_participants, (*preset.roi_hw, config.dataset.frame_stack)


def measure_step(config, rt: runtime.Runtime, num_folds: int, image_shape, num_targets: int, steps: int) -> dict:
    """Wall and CPU seconds per step of the run's train step on synthetic data, and its memory."""
    batch_size = config.train.batch_size
    mesh = sharding.make_mesh(num_folds, jax.devices()[:1])
    state = train.build_state(config, rt, num_targets, num_folds, image_shape, mesh)
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.integers(0, 256, (num_folds, batch_size, *image_shape), dtype=np.uint8))
    targets = jax.device_put(rng.standard_normal((num_folds, batch_size, num_targets)).astype(np.float32))
    folds = jnp.arange(num_folds)
    program = train.make_fold_train_step(rt, config.seed, config.augment)
    start = time.perf_counter()
    step = program.compile(state, images, targets, folds)
    compile_s = time.perf_counter() - start
    wall, cpu = [], []
    for _ in range(steps + 1):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        state, metrics = step(state, images, targets, folds)
        jax.block_until_ready(metrics)
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    one_fold = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), (state, images, targets, folds))
    compiled_one_fold = jax.jit(train.per_fold_train_step(config.seed, config.augment)).lower(*one_fold).compile()
    memory = compiled_one_fold.memory_analysis()
    return {
        "step_s": statistics.median(wall[1:]), "step_s_all": wall, "cpu_s_per_step": statistics.median(cpu[1:]),
        "compile_s": compile_s,
        "state_bytes": sum(leaf.nbytes for leaf in jax.tree.leaves(state)),
        "gradient_bytes": sum(leaf.nbytes for leaf in jax.tree.leaves(state.params)),
        "one_fold_temp_bytes": int(memory.temp_size_in_bytes) if memory is not None else None,
        "process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def input_pipeline_rate(config, num_participants: int, steps: int) -> dict:
    """Records per second of the training batches of the config's dataset cut to
    `num_participants` (same record form), read by one process with `train.input_threads`."""
    dataset_config = config.dataset.copy_and_resolve_references()
    with dataset_config.unlocked():
        dataset_config.phantom_overrides = {**dict(config.dataset.phantom_overrides), "num_participants": num_participants}
    start = time.perf_counter()
    source, info = pipeline.load_source(dataset_config)
    ready_s = time.perf_counter() - start
    index = pipeline.read_index(source, tuple(config.dataset.targets))
    folds = folds_lib.make_folds(index.groups("participant"), "participant", 0, 0)
    stats = pipeline.label_stats(index.targets_NxT, folds.train_KxN)
    batches = pipeline.train_batches(source, index, folds.train_KxN, stats, config.train.batch_size, config.seed,
                                     0, steps + 2, config.train.input_threads, config.dataset.frame_stack)
    for _ in range(2):
        batch = next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
    seconds = time.perf_counter() - start
    records = steps * int(np.prod(batch["image"].shape[:2]))
    return {"dataset": info.full_name, "dataset_ready_s": ready_s, "input_threads": config.train.input_threads,
            "records_per_s": records / seconds, "batch_shape": list(batch["image"].shape)}


def model_flops_per_step(config, rt: runtime.Runtime, num_folds: int, image_shape, num_targets: int) -> float:
    """XLA's FLOP count of the K-fold step with direct convolutions (one fold's × K)."""
    state = train.build_state(config, rt.replace(conv="xla"), num_targets, 1, image_shape,
                              sharding.make_mesh(1, jax.devices()[:1]))
    one_fold = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), state)
    args = (one_fold, jax.ShapeDtypeStruct((config.train.batch_size, *image_shape), jnp.uint8),
            jax.ShapeDtypeStruct((config.train.batch_size, num_targets), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32))
    lowered = jax.jit(train.per_fold_train_step(config.seed, config.augment)).lower(*args)
    return float(lowered.compile().cost_analysis()["flops"]) * num_folds


def projections(measured: dict, flops_per_step: float, num_steps: int, num_folds: int,
                utilisation: float, hosts: list[int], gpus_per_host: int, interconnect_gbit_s: float) -> dict:
    """The whole run's time here (measured step × steps) and projected on GPUs (module docstring)."""
    gpus = {}
    for (entry, _), compute_dtype in ((e, d) for e in machine.DATASHEET_PEAKS for d in runtime.COMPUTE_DTYPES):
        peak = machine.datasheet_peak(entry, compute_dtype)["flops_per_s"]
        one_gpu_step_s = flops_per_step / (peak * utilisation)
        several = {}
        for num_hosts in hosts:
            devices = num_hosts * gpus_per_host
            ring_bytes = 2 * (devices - 1) / devices * measured["gradient_bytes"]
            all_reduce_s = ring_bytes * 8 / (interconnect_gbit_s * 1e9) if num_hosts > 1 else 0.0
            step_s = one_gpu_step_s / devices + all_reduce_s
            several[f"{num_hosts}x{gpus_per_host}"] = {
                "gpus": devices, "mesh": {"fold": math.gcd(devices, num_folds), "data": devices // math.gcd(devices, num_folds)},
                "step_s": step_s, "all_reduce_s": all_reduce_s, "run_h": step_s * num_steps / 3600,
            }
        gpus[f"{entry} {compute_dtype}"] = {"datasheet_peak_flops_per_s": peak, "step_s": one_gpu_step_s,
                       "run_h": one_gpu_step_s * num_steps / 3600, "several_hosts": several}
    return {
        "this_machine_run_h": measured["step_s"] * num_steps / 3600,
        "gpu_utilisation_assumed": utilisation, "interconnect_gbit_s_assumed": interconnect_gbit_s,
        "gpus": gpus,
    }


def summary(results: dict) -> list[str]:
    measured, projected = results["measured"], results["projected"]
    records_per_step = results["num_folds"] * results["batch_size"]
    lines = [
        f"machine: {results['machine']['cpu_model']} ({results['machine']['cpu_count']} cores), jax "
        f"{results['machine']['jax']} on {results['machine']['backend']}; load average "
        f"{results['load_average_start'][0]:.1f} → {results['load_average_end'][0]:.1f}",
        f"configs/paper.py step: K={results['num_folds']} folds × batch {results['batch_size']} of "
        f"{'×'.join(map(str, results['image_shape']))}, {results['compute_dtype']}, folds run "
        f"{results['fold_execution']}; model {results['model_flops_per_step'] / 1e12:.2f} TFLOP per step",
        f"measured: {measured['step_s']:.1f} s per step (CPU {measured['cpu_s_per_step']:.1f} s; steps "
        f"{', '.join(f'{s:.1f}' for s in measured['step_s_all'])}, the first untimed), compile "
        f"{measured['compile_s']:.1f} s; train state {measured['state_bytes'] / 2**20:.0f} MiB, one fold's "
        f"temporary memory {measured['one_fold_temp_bytes'] / 2**20:.0f} MiB, peak RSS "
        f"{measured['process_peak_rss_bytes'] / 2**30:.2f} GiB",
        f"whole run ({results['num_steps']} steps) on this machine: {projected['this_machine_run_h']:.0f} h "
        f"({projected['this_machine_run_h'] / 24:.1f} days), training alone",
        f"PROJECTED (not measured) at {projected['gpu_utilisation_assumed']:.0%} of the datasheet's dense "
        f"peak, all-reduce over {projected['interconnect_gbit_s_assumed']:.0f} Gbit/s, model arithmetic only "
        f"({records_per_step} records per step):",
    ]
    for entry, gpu in projected["gpus"].items():
        several = "; ".join(f"{name} GPUs {p['step_s'] * 1e3:.0f} ms/step ({p['all_reduce_s'] * 1e3:.0f} ms all-reduce) "
                            f"{p['run_h'] * 60:.0f} min" for name, p in gpu["several_hosts"].items())
        lines.append(f"  {entry}: {gpu['datasheet_peak_flops_per_s'] / 1e12:.0f} TFLOP/s → one GPU "
                     f"{gpu['step_s'] * 1e3:.0f} ms/step ({records_per_step / gpu['step_s']:,.0f} records/s), run "
                     f"{gpu['run_h'] * 60:.0f} min; {several}")
    if "input_pipeline" in results:
        pipe = results["input_pipeline"]
        lines.append(f"input pipeline (measured, {pipe['dataset']}, {pipe['input_threads']} threads, one process): "
                     f"{pipe['records_per_s']:,.0f} records/s → at least {records_per_step / pipe['records_per_s']:.2f} s "
                     f"per step for reading alone, {records_per_step / pipe['records_per_s'] * results['num_steps'] / 3600:.1f} h "
                     f"for the run, unless more threads or processes read")
    return lines


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.INFO)
    FLAGS = flags.FLAGS
    config = FLAGS.config
    load_start = os.getloadavg()
    num_folds, image_shape = paper_shape(config)
    num_targets = len(config.dataset.targets)
    rt = runtime.resolve(config.runtime).replace(fold_execution=FLAGS.fold_execution)
    measured = measure_step(config, rt, num_folds, image_shape, num_targets, FLAGS.steps)
    flops = model_flops_per_step(config, rt, num_folds, image_shape, num_targets)
    results = {
        "machine": machine.describe(), "load_average_start": load_start,
        "num_folds": num_folds, "image_shape": list(image_shape), "batch_size": config.train.batch_size,
        "num_steps": config.train.num_steps, "compute_dtype": rt.compute_dtype, "fold_execution": rt.fold_execution,
        "runtime": rt.to_json(), "model_flops_per_step": flops, "measured": measured,
        "projected": projections(measured, flops, config.train.num_steps, num_folds, FLAGS.gpu_utilisation, FLAGS.hosts, FLAGS.gpus_per_host, FLAGS.interconnect_gbit_s),
    }
    if FLAGS.input_participants:
        results["input_pipeline"] = input_pipeline_rate(config, FLAGS.input_participants, FLAGS.input_steps)
    results["load_average_end"] = os.getloadavg()
    print("\n".join(summary(results)))
    if FLAGS.json:
        path = Path(FLAGS.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main, define_flags)
