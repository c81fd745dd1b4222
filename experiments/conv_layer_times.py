"""Time each convolution of the pinned benchmark network alone: forward, input gradient, kernel gradient.

    python experiments/conv_layer_times.py [--batch_size 64] [--image_size 128] [--xla_defaults]
        [--conv_impl xla_chunked_wgrad]

For every conv layer of configs/benchmark.py's convnet (3×3, 'same', XLA convolution) it
prints the median time of the three convolutions a train step runs and their GFLOP/s, under
the tuned XLA CPU options (muscle_jax/xla_cpu.py) or, with --xla_defaults, under XLA's
defaults. Large buffers go on huge pages (muscle_jax/allocator.py; the script restarts
itself once) unless --glibc_default, so that page faults of fresh output buffers do not
dominate the small layers. This is the per-layer evidence behind docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from muscle_jax import allocator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--xla_defaults", action="store_true", help="compile with XLA's default options")
    parser.add_argument("--conv_impl", default="xla", help="a model.conv_impl (muscle_jax/models/layers.py)")
    parser.add_argument("--glibc_default", action="store_true", help="leave glibc's allocator as it is")
    args = parser.parse_args()
    if not args.glibc_default:
        allocator.reexec_with_huge_pages()

    import jax

    from benchmark import timed_repeats  # experiments/benchmark.py

    from muscle_jax import xla_cpu
    from muscle_jax.models import layers

    options = {} if args.xla_defaults else xla_cpu.compiler_options()

    def median_ms(function, *operands) -> float:
        timings = timed_repeats(lambda: jax.block_until_ready(function(*operands)), 1, args.repeats)
        return statistics.median(timings.wall_s) * 1e3

    conv = layers.conv_function(args.conv_impl)
    forward = xla_cpu.jit(conv, options)
    input_gradient = xla_cpu.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0], options)
    kernel_gradient = xla_cpu.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0], options)

    print(f"{args.conv_impl}, batch {args.batch_size}, options {options or 'XLA defaults'}, "
          f"huge pages {allocator.uses_huge_pages()}")
    print(f"{'layer':24s} {'GFLOP':>6s} {'forward ms':>11s} {'input grad ms':>14s} {'kernel grad ms':>15s}  (GFLOP/s)")
    size, in_channels = args.image_size, 1
    keys = iter(jax.random.split(jax.random.key(0), 3 * 2 * len(args.channels)))
    for features in args.channels:
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
    main()
