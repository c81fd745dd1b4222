"""Time each convolution of the pinned benchmark network alone: forward, input gradient, kernel gradient.

    [GLIBC_TUNABLES=glibc.malloc.hugetlb=1] python experiments/conv_layer_times.py \
        [--batch_size=64] [--image_size=128] [--xla_defaults] [--conv=xla_chunked_wgrad]

For every conv layer of configs/benchmark.py's convnet (3×3, 'same') it prints the median
time of the three convolutions a train step runs and their GFLOP/s, for one formulation
(`runtime.conv`, muscle_jax/runtime/conv.py), under the tuned XLA CPU options
(muscle_jax/runtime/xla_cpu.py) or, with --xla_defaults, under XLA's defaults. With glibc's
huge pages (the environment variable above), page faults of fresh output buffers do not
dominate the small layers. This is the per-layer evidence behind docs/performance.md; a
convolution timed alone is not the train step (whole-step figures: experiments/benchmark.py).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
from absl import flags  # noqa: E402

from benchmark import timed_repeats  # noqa: E402  (experiments/benchmark.py)
from muscle_jax import cli  # noqa: E402
from muscle_jax.runtime import allocator, xla_cpu  # noqa: E402
from muscle_jax.runtime import conv as formulations  # noqa: E402


def define_flags() -> None:
    flags.DEFINE_integer("batch_size", 64, "Images per convolution.")
    flags.DEFINE_integer("image_size", 128, "Input height and width of the first layer.")
    flags.DEFINE_list("channels", ["32", "64", "128", "256"], "Widths of the network's stages.")
    flags.DEFINE_integer("repeats", 5, "Timed calls per convolution (median).")
    flags.DEFINE_boolean("xla_defaults", False, "Compile with XLA's default options instead of the tuned ones.")
    flags.DEFINE_enum("conv", "xla", formulations.FORMULATIONS, "The formulation (runtime.conv).")


def main(argv: list[str]) -> None:
    args = flags.FLAGS
    options = {} if args.xla_defaults else xla_cpu.compiler_options()

    def jit(function):
        return jax.jit(function, compiler_options=options or None)

    def median_ms(function, *operands) -> float:
        timings = timed_repeats(lambda: jax.block_until_ready(function(*operands)), 1, args.repeats)
        return statistics.median(timings.wall_s) * 1e3

    conv = formulations.conv_function(args.conv)
    forward = jit(conv)
    input_gradient = jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
    kernel_gradient = jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])

    print(f"{args.conv}, batch {args.batch_size}, options {options or 'XLA defaults'}, "
          f"huge pages {allocator.uses_huge_pages()}")
    print(f"{'layer':24s} {'GFLOP':>6s} {'forward ms':>11s} {'input grad ms':>14s} {'kernel grad ms':>15s}  (GFLOP/s)")
    size, in_channels = args.image_size, 1
    channels = [int(c) for c in args.channels]
    keys = iter(jax.random.split(jax.random.key(0), 3 * 2 * len(channels)))
    for features in channels:
        for _ in range(2):
            x = jax.random.normal(next(keys), (args.batch_size, size, size, in_channels))
            w = jax.random.normal(next(keys), (3, 3, in_channels, features)) * 0.1
            g = jax.random.normal(next(keys), (args.batch_size, size, size, features))
            gflop = 2 * args.batch_size * size * size * 9 * in_channels * features / 1e9
            times = [median_ms(forward, x, w), median_ms(input_gradient, x, w, g), median_ms(kernel_gradient, x, w, g)]
            rates = "/".join(f"{gflop / t * 1e3:.0f}" for t in times)
            print(f"{size}×{size} {in_channels:>3d} → {features:<3d}{'':8s} {gflop:6.2f} {times[0]:11.1f} "
                  f"{times[1]:14.1f} {times[2]:15.1f}  ({rates})", flush=True)
            in_channels = features
        size //= 2


if __name__ == "__main__":
    cli.run(main, define_flags)
