"""What this process runs on: the CPU model, cores, JAX and its devices."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

import jax


@functools.cache
def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (e.g. 'AMD EPYC'), else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict[str, Any]:
    """CPU model and cores, JAX's version, backend and devices: what a figure was measured on."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [device.device_kind for device in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def one_line() -> str:
    """`describe()` as one line for logs and reports."""
    info = describe()
    return f"{info['cpu_model']}, {info['cpu_count']} cores, jax {info['jax']} on {info['backend']}"
