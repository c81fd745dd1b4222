"""The pinned benchmark network and train step in PyTorch (CPU, channels-last), for comparison.

Same network as `muscle_jax.models.convnet.ConvNet` with the pinned benchmark settings
(`configs/benchmark.py`): stages of [conv3×3 → ReLU → conv3×3 → ReLU → maxpool 2×2] with
channels (32, 64, 128, 256), global average pool, Dense 256 → ReLU → Dropout 0.5 → Dense T;
Adam, MSE, batch 64 of 1×128×128 float32 images. Weights are initialised as in PyTorch (the
initialisation does not change the cost of a step).

PyTorch is NOT a dependency of muscle_jax. Run it from its own environment:

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python experiments/pytorch_reference.py --json=/tmp/torch.json

`experiments/benchmark.py --torch_python=/tmp/torchvenv/bin/python` runs it in the same
session as the JAX measurements, so the two figures share the machine's load. It is the one
command that parses its arguments with argparse rather than absl: it runs in PyTorch's own
environment, where neither muscle_jax nor absl is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch import nn

# muscle_jax/runtime/allocator.py's counter of free memory handed back to a VM's host (muscle_jax is
# not installed in this interpreter): re-faulting what a step hands back can slow it.
REPORTED_TO_HOST_KIB = "/sys/module/page_reporting/parameters/reported_kib"


def reported_to_host_kib() -> int | None:
    try:
        with open(REPORTED_TO_HOST_KIB) as counter:
            return int(counter.read())
    except (OSError, ValueError):
        return None


def make_network(channels: tuple[int, ...], hidden: int, dropout: float, num_targets: int) -> nn.Module:
    """[conv → ReLU → conv → ReLU → maxpool] per stage, GAP, Dense → ReLU → Dropout → Dense."""
    blocks: list[nn.Module] = []
    in_channels = 1
    for features in channels:
        blocks += [
            nn.Conv2d(in_channels, features, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(features, features, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        in_channels = features
    blocks += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(in_channels, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_targets),
    ]
    return nn.Sequential(*blocks)


def measure(args: argparse.Namespace) -> dict:
    """Steady-state train-step time of one model; warm-up steps excluded."""
    torch.manual_seed(0)
    network = make_network(tuple(args.channels), args.hidden, args.dropout, args.num_targets)
    network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    images = torch.rand(args.batch_size, 1, args.image_size, args.image_size).to(memory_format=torch.channels_last)
    targets = torch.randn(args.batch_size, args.num_targets)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(network(images), targets)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    seconds, cpu_seconds, reported_kib = [], [], []
    for _ in range(args.repeats):
        reported_start = reported_to_host_kib()
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        reported_end = reported_to_host_kib()
        if reported_start is not None and reported_end is not None:
            reported_kib.append(reported_end - reported_start)
    rates = [args.batch_size / s for s in seconds]
    return {
        "framework": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "batch_size": args.batch_size,
        "step_s_median": statistics.median(seconds),
        "examples_per_s": statistics.median(rates),
        "examples_per_s_min": min(rates),
        "examples_per_s_max": max(rates),
        "examples_per_s_mean": args.batch_size * len(seconds) / sum(seconds),
        "cpu_s_per_example": statistics.median(cpu_seconds) / args.batch_size,
        "repeats": args.repeats,
        # Per timed step, so that experiments/benchmark.py can pool rounds and summarise them as
        # it does JAX's steps.
        "step_s": seconds,
        "cpu_s": cpu_seconds,
        "reported_to_host_mib": [kib / 1024 for kib in reported_kib] if len(reported_kib) == args.repeats else None,
    }


def per_layer(args: argparse.Namespace) -> list[dict]:
    """Median ms of each conv layer's forward and its backward (input and kernel gradients) alone."""
    torch.manual_seed(0)
    rows, size, in_channels = [], args.image_size, 1
    for features in args.channels:
        for _ in range(2):
            conv = nn.Conv2d(in_channels, features, 3, padding=1).to(memory_format=torch.channels_last)
            x = torch.randn(args.batch_size, in_channels, size, size).to(memory_format=torch.channels_last)
            x.requires_grad_(in_channels > 1)  # the image itself needs no gradient in training
            grad = torch.randn(args.batch_size, features, size, size).to(memory_format=torch.channels_last)
            y = conv(x)
            wrt = [x, conv.weight] if in_channels > 1 else [conv.weight]

            def forward() -> None:
                with torch.no_grad():
                    conv(x)

            def backward() -> None:
                torch.autograd.grad(y, wrt, grad, retain_graph=True)

            timings = {}
            for name, function in (("forward_ms", forward), ("backward_ms", backward)):
                function()
                seconds = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    function()
                    seconds.append(time.perf_counter() - start)
                timings[name] = statistics.median(seconds) * 1e3
            gflop = 2 * args.batch_size * size * size * 9 * in_channels * features / 1e9
            rows.append({"layer": f"{size}x{size} {in_channels}->{features}", "gflop": gflop, **timings})
            in_channels = features
        size //= 2
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--num_targets", type=int, default=3)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="", help="also write the result to this file")
    parser.add_argument(
        "--per_layer", action="store_true",
        help="instead of the train step, time each conv layer's forward and backward alone (JSON line per layer)",
    )
    args = parser.parse_args()
    if args.per_layer:
        for row in per_layer(args):
            print(json.dumps(row))
        return
    result = measure(args)
    # Set by experiments/benchmark.py (or by hand) to compare under the same allocator setting;
    # the string is muscle_jax/runtime/allocator.py's HUGE_PAGES_TUNABLE (muscle_jax is not installed here).
    result["huge_pages"] = "glibc.malloc.hugetlb=1" in os.environ.get("GLIBC_TUNABLES", "").split(":")
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
