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


# Dense peak FLOP/s from NVIDIA's datasheets ("NVIDIA H100 Tensor Core GPU" and "NVIDIA H200
# Tensor Core GPU"), whose tensor-core figures are quoted with 2:4 sparsity: halved here for
# dense work. 'float32' is the tensor cores' TF32 rate, which XLA uses for float32 convolutions
# and matmuls at JAX's default precision on these GPUs; 'float32_cuda_cores' the plain FP32 rate.
# Matched against `device_kind` in order, the first substring that occurs wins.
DATASHEET_PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200 NVL", {"bfloat16": 835.5e12, "float32": 417.5e12, "float32_cuda_cores": 60e12}),
    ("H200", {"bfloat16": 989.5e12, "float32": 494.5e12, "float32_cuda_cores": 67e12}),  # SXM
    ("H100 NVL", {"bfloat16": 835.5e12, "float32": 417.5e12, "float32_cuda_cores": 60e12}),
    ("H100 PCIe", {"bfloat16": 756.5e12, "float32": 378e12, "float32_cuda_cores": 51e12}),
    ("H100", {"bfloat16": 989.5e12, "float32": 494.5e12, "float32_cuda_cores": 67e12}),  # SXM
)


def datasheet_peak(device_kind: str, compute_dtype: str) -> dict[str, Any] | None:
    """{'flops_per_s', 'float32_cuda_cores_flops_per_s', 'entry'}: the datasheet's dense peak
    of a known device for `compute_dtype` ('float32' | 'bfloat16'); None for any other device
    (every CPU among them: a CPU's peak is measured, not looked up)."""
    for entry, peaks in DATASHEET_PEAKS:
        if entry in device_kind:
            return {"flops_per_s": peaks[compute_dtype],
                    "float32_cuda_cores_flops_per_s": peaks["float32_cuda_cores"], "entry": entry}
    return None


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
    line = f"{info['cpu_model']}, {info['cpu_count']} cores, jax {info['jax']} on {info['backend']}"
    if info["backend"] != "cpu":  # the accelerator's own name, e.g. 'NVIDIA H200 ×1'
        line += " (" + ", ".join(f"{kind} ×{info['devices'].count(kind)}" for kind in dict.fromkeys(info["devices"])) + ")"
    return line
