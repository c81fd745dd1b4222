"""Side-by-side levers of the real train step: convolution formulation, fold execution, dtype, XLA flags.

    python experiments/conv_formulations.py --image_size=64 --batch_size=32 --num_folds=4 \\
        xla:single matmul:single matmul:vmap matmul:map xla:unroll matmul:map:bfloat16 \\
        "xla:single:float32:xla_cpu_experimental_ynn_fusion_type="

Each variant is `conv_impl:execution[:dtype[:xla_option=value,...]]`; execution is 'single'
(one model, K = 1), a `train.fold_execution` ('vmap', 'map'), or 'unroll' — a candidate not
in `muscle_jax.folds`: the K per-fold steps written out one after another in one jitted
program (no loop, so each convolution stays a plain one). All variants use the network of
configs/benchmark.py and are compiled first, then timed round-robin (one step of each in
turn, `--repeats` rounds) so that they share the machine's load; the report gives median
wall examples/s and process CPU milliseconds per example. On a shared machine prefer the
CPU figure, and pin to one core (`taskset -c 1`) so that it is not inflated by two threads
waiting on each other.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from configs import benchmark as benchmark_config  # noqa: E402

from benchmark import StepBench, throughput  # noqa: E402  (experiments/benchmark.py)
from muscle_jax import train  # noqa: E402
from muscle_jax.models import create_model  # noqa: E402


def unrolled_fold_step(seed: int):
    """The K per-fold train steps one after another in one jitted program, state donated."""

    def fold_step(state, images_KxBxHxWx1, targets_KxBxT):
        outputs = [
            train.train_step(
                jax.tree_util.tree_map(lambda leaf: leaf[k], state), images_KxBxHxWx1[k], targets_KxBxT[k], k, seed
            )
            for k in range(images_KxBxHxWx1.shape[0])
        ]
        return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *outputs)

    return jax.jit(fold_step, donate_argnums=0)


def parse_variant(spec: str) -> tuple[str, str, str, dict]:
    """'conv_impl:execution[:dtype[:opt=value,...]]' → its parts; option values 'true'/'false' become bools."""
    parts = spec.split(":")
    if len(parts) < 2:
        raise ValueError(f"variant {spec!r} must be conv_impl:execution[:dtype[:options]]")
    conv_impl, execution = parts[0], parts[1]
    dtype = parts[2] if len(parts) > 2 and parts[2] else "float32"
    options = {}
    for item in filter(None, (parts[3] if len(parts) > 3 else "").split(",")):
        name, _, value = item.partition("=")
        options[name] = {"true": True, "false": False}.get(value, value)
    return conv_impl, execution, dtype, options


def build(spec: str, args: argparse.Namespace) -> StepBench:
    conv_impl, execution, dtype, options = parse_variant(spec)
    config = benchmark_config.get_config()
    config.model.conv_impl, config.model.dtype = conv_impl, dtype
    config.train.batch_size = args.batch_size
    config.benchmark.image_hw = (args.image_size, args.image_size)
    model = create_model(config.model, config.benchmark.num_targets)
    tx = train.make_optimizer(config.train)
    num_folds = 1 if execution == "single" else args.num_folds
    step_fn = unrolled_fold_step(config.seed) if execution == "unroll" else None
    fold_execution = "vmap" if execution in ("single", "unroll") else execution
    return StepBench(config, model, tx, num_folds, fold_execution, step_fn=step_fn, compiler_options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_folds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    benches = {}
    for spec in args.variants:
        benches[spec] = build(spec, args)
        benches[spec].run()  # warm-up, excluded
        print(f"compiled {spec} in {benches[spec].compile_s:.1f} s", flush=True)
    wall = {spec: [] for spec in benches}
    cpu = {spec: [] for spec in benches}
    for _ in range(args.repeats):
        for spec, bench in benches.items():
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            bench.run()
            wall[spec].append(time.perf_counter() - wall_start)
            cpu[spec].append(time.process_time() - cpu_start)
    print(f"{args.image_size}×{args.image_size}, batch {args.batch_size} per fold, K = {args.num_folds}, "
          f"{args.repeats} rounds")
    print(f"{'variant':55s} {'examples/s':>10s} {'[min – max]':>15s} {'CPU ms/ex':>9s} {'compile s':>9s}")
    for spec, bench in benches.items():
        figures = throughput(wall[spec], cpu[spec], bench.examples_per_step)
        span = f"[{figures['examples_per_s_min']:.1f} – {figures['examples_per_s_max']:.1f}]"
        print(f"{spec:55s} {figures['examples_per_s']:10.1f} {span:>15s} "
              f"{figures['cpu_s_per_example'] * 1e3:9.1f} {bench.compile_s:9.1f}")


if __name__ == "__main__":
    main()
