"""Runtime choices measured on this machine, for this step, and remembered.

A choice that depends on the CPU (which XLA options, which convolution formulation, how the
fold axis runs) is made by timing the caller's own train step under each candidate:
candidates are measured in alternating rounds, so that a drift in a shared machine's speed
slows all alike, and each keeps the fastest of its rounds (other processes only ever add
time). The plain candidate (the first of each list) is kept unless another is at least
`MARGIN` faster, so that noise does not flip the choice. The fields are chosen one after
another (`STAGES`), options and formulation on one fold's program (cheap to compile), then
the fold execution with the winners; with XLA's persistent compilation cache the program
training then compiles is already compiled.

The choice is cached in `<cache>/runtime/<digest>.json` (cache: `$MUSCLE_JAX_CACHE`, else
`~/.cache/muscle_jax`), keyed by the CPU model, core count, JAX version, backend, the step
(model, shapes, batch, fold count) and the pinned fields, so a second run on the same
machine reuses it and gives the same numbers. Delete the file (or pin the fields) to
measure again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from muscle_jax.runtime import machine

MEASURED_FIELDS = ("conv", "xla_options", "fold_execution")
STAGES = ("xla_options", "conv", "fold_execution")
# The first of each is the plain candidate that another must beat by MARGIN.
CANDIDATES = {"conv": ("xla", "winograd"), "xla_options": ("tuned", "default"), "fold_execution": ("unroll", "sequential")}
MARGIN = 0.05
ROUNDS = 2


def cache_root() -> Path:
    """This machine's cache of runtime choices and compiled programs: `$MUSCLE_JAX_CACHE`,
    else `~/.cache/muscle_jax`."""
    return Path(os.environ.get("MUSCLE_JAX_CACHE") or Path.home() / ".cache" / "muscle_jax")


def cache_dir() -> Path:
    """Where measured choices are kept."""
    return cache_root() / "runtime"


def cache_path(fields: list[str], pinned: dict[str, Any], step_key: dict[str, Any]) -> Path:
    key = {
        "machine": {k: v for k, v in machine.describe().items() if k != "devices"},
        "fields": sorted(fields),
        "pinned": pinned,
        "step": step_key,
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir() / f"{digest}.json"


def fastest(candidates: list[dict[str, str]], seconds: list[float]) -> int:
    """Index of the chosen candidate: the first (plain) one unless another is MARGIN faster."""
    best = min(range(len(seconds)), key=seconds.__getitem__)
    return 0 if seconds[0] <= seconds[best] * (1 + MARGIN) else best


def _label(candidate: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in candidate.items())


def measure_in_rounds(runtime, candidates: list[dict[str, str]], measure: Callable) -> list[float]:
    """Seconds per example of each candidate: the fastest of ROUNDS alternating rounds."""
    seconds = [float("inf")] * len(candidates)
    for _ in range(ROUNDS):
        for i, candidate in enumerate(candidates):
            seconds[i] = min(seconds[i], measure(dataclasses.replace(runtime, **candidate)))
    for candidate, s in zip(candidates, seconds):
        logging.info("runtime candidate %s: %.0f examples/s", _label(candidate), 1.0 / s)
    return seconds


def choose(runtime, fields: list[str], measure: Callable[[Any], float], step_key: dict[str, Any]):
    """`runtime` with its 'auto' `fields` chosen by measurement (or from the cache)."""
    pinned = {name: getattr(runtime, name) for name in MEASURED_FIELDS if name not in fields}
    path = cache_path(fields, pinned, step_key)
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            chosen = {name: cached["chosen"][name] for name in fields}
            if any(chosen[name] not in CANDIDATES[name] for name in fields):
                raise ValueError(f"a choice outside {CANDIDATES}")
        except (OSError, ValueError, KeyError, TypeError) as error:
            logging.warning("runtime cache %s is unreadable (%s); measuring again", path, error)
        else:
            logging.info("runtime choices of an earlier measurement on this machine: %s (%s)", chosen, path)
            return dataclasses.replace(
                runtime, **chosen, chosen_by={**runtime.chosen_by, **{n: "cached" for n in fields}},
                measurements=cached.get("measurements", {}),
            )
    started = time.perf_counter()
    measurements: dict[str, Any] = {}
    for field in (name for name in STAGES if name in fields):
        # Options and formulation are compared on one fold's program when the fold execution is
        # still to be measured ('sequential' calls exactly that program).
        execution = "sequential" if field != "fold_execution" and "fold_execution" in fields else runtime.fold_execution
        current = getattr(runtime, field)
        values = [current] + [value for value in CANDIDATES[field] if value != current]
        candidates = [{field: value, "fold_execution": execution} if field != "fold_execution" else {field: value}
                      for value in values]
        seconds = measure_in_rounds(runtime, candidates, measure)
        measurements[field] = {_label(c): s for c, s in zip(candidates, seconds)}
        runtime = dataclasses.replace(runtime, **{field: values[fastest(candidates, seconds)]})
    measurements["seconds"] = round(time.perf_counter() - started, 1)
    chosen = {name: getattr(runtime, name) for name in fields}
    logging.info("runtime measured in %.1f s: %s (cached in %s)", measurements["seconds"], chosen, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"chosen": chosen, "measurements": measurements, "machine": machine.describe(),
                                "step": step_key, "pinned": pinned}, indent=2, default=str) + "\n")
    return dataclasses.replace(
        runtime, chosen_by={**runtime.chosen_by, **{n: "measured" for n in fields}}, measurements=measurements
    )
