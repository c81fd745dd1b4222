"""Sweeps of config overrides: expand, validate, name, launch, and compare the runs.

A sweep file (`experiments/sweeps/*.py`) is a small Python module:

    FIXED = {"train.num_steps": 200}                      # applied to every run (optional)
    RUNS = [{}] + product({"model.dropout": [0.0, 0.5]})  # one dict of overrides per run

Keys are dotted config fields; values are what `--config.<field>=` would be given. The first
run is the baseline that every other run is compared with, fold by fold (name another with
`BASELINE = "<run name>"`). A run's name comes from its overrides unless given as a
`("name", {...})` pair. `experiments/sweep.py` is the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import re
from pathlib import Path
from typing import Any, Sequence

import ml_collections
import numpy as np
from matplotlib.figure import Figure

from muscle_jax import intervals

Overrides = dict[str, Any]


def product(axes: dict[str, Sequence[Any]]) -> list[Overrides]:
    """Every combination of the axes' values (the first axis varies slowest)."""
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def zipped(axes: dict[str, Sequence[Any]]) -> list[Overrides]:
    """The axes' values taken together, position by position (all axes the same length)."""
    lengths = {k: len(v) for k, v in axes.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"zipped axes must have equal lengths, got {lengths}")
    keys = list(axes)
    return [dict(zip(keys, values)) for values in zip(*(axes[k] for k in keys))]


def flag_value(value: Any) -> str:
    """How `value` is written after `--config.<field>=` so that config_flags reads it back."""
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def run_name(overrides: Overrides) -> str:
    """A readable directory name from the overrides: `dropout=0.5`, `channels=8-16-32-64`."""
    if not overrides:
        return "baseline"
    parts = []
    for key, value in overrides.items():
        text = "-".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{key.split('.')[-1]}={text}")
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", "__".join(parts))


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    overrides: Overrides  # FIXED then the run's own

    def flags(self) -> list[str]:
        return [f"--config.{key}={flag_value(value)}" for key, value in self.overrides.items()]


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    runs: tuple[Run, ...]
    baseline: str
    description: str


def load_sweep(path: str | Path) -> Sweep:
    """Reads a sweep file; every problem is reported with the file's path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} not found")
    spec = importlib.util.spec_from_file_location(f"sweep_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entries = getattr(module, "RUNS", None)
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: RUNS must be a non-empty list of override dicts or (name, dict) pairs")
    fixed = dict(getattr(module, "FIXED", {}))
    runs = []
    for entry in entries:
        name, overrides = entry if isinstance(entry, tuple) else (None, entry)
        if not isinstance(overrides, dict):
            raise ValueError(f"{path}: each run must be a dict of overrides, got {entry!r}")
        runs.append(Run(name or run_name(overrides), {**fixed, **overrides}))
    names = [run.name for run in runs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"{path}: runs {duplicated} appear more than once")
    baseline = getattr(module, "BASELINE", names[0])
    if baseline not in names:
        raise ValueError(f"{path}: BASELINE {baseline!r} is not one of the runs {names}")
    return Sweep(getattr(module, "NAME", path.stem), path, tuple(runs), baseline, (module.__doc__ or "").strip())


def load_config(config_arg: str) -> ml_collections.ConfigDict:
    """The config a `--config=path[:mode]` argument names, as the entry point would load it."""
    path, _, mode = config_arg.partition(":")
    spec = importlib.util.spec_from_file_location(f"config_{Path(path).stem}", path)
    if spec is None or not Path(path).is_file():
        raise FileNotFoundError(f"config file {path} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(mode) if mode else module.get_config()


def validate(sweep: Sweep, base: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
    """Applies every run's overrides to a copy of the locked base config, so that a misspelled
    field or a value of the wrong type fails before any run starts; returns each run's config
    by run name."""
    configs = {}
    for run in sweep.runs:
        config = ml_collections.ConfigDict(base.to_dict())
        config.lock()
        for key, value in run.overrides.items():
            *parents, leaf = key.split(".")
            node = config
            try:
                for parent in parents:
                    node = node[parent]
                if leaf not in node:
                    raise KeyError(leaf)
                node[leaf] = tuple(value) if isinstance(value, list) else value
            except (KeyError, AttributeError, TypeError) as error:
                raise ValueError(f"{sweep.path}: run {run.name!r}: cannot set config field {key!r} to {value!r} "
                                 f"({type(error).__name__}: {error})") from error
        configs[run.name] = config
    return configs


# ---------------------------------------------------------------------------- comparing runs

COLUMNS = ("run", "target", "unit", "rmse", "rmse_ci_low", "rmse_ci_high", "nrmse_pct", "r2", "r2_ci_low",
           "r2_ci_high", "delta_rmse_vs_baseline", "delta_ci_low", "delta_ci_high", "folds_better", "folds",
           "mean_predictor_rmse", "ridge_rmse", "train_s", "commit")


def comparison_rows(results_by_run: dict[str, dict], baseline: str) -> list[dict[str, Any]]:
    """One row per (run, target): held-out CNN metrics with their intervals, the baselines, and
    the paired per-fold difference in RMSE from the baseline run (negative = better)."""
    reference = results_by_run.get(baseline)
    rows = []
    for name, results in results_by_run.items():
        for target in results["targets"]:
            cnn = results["models"]["cnn"][target]
            row = {
                "run": name, "target": target, "unit": results["units"][target],
                "rmse": cnn["rmse"]["mean"], "rmse_ci_low": _ci(cnn["rmse"], 0), "rmse_ci_high": _ci(cnn["rmse"], 1),
                "nrmse_pct": cnn["nrmse_pct"]["mean"],
                "r2": cnn["r2"]["mean"], "r2_ci_low": _ci(cnn["r2"], 0), "r2_ci_high": _ci(cnn["r2"], 1),
                "delta_rmse_vs_baseline": None, "delta_ci_low": None, "delta_ci_high": None,
                "folds_better": None, "folds": len(results["folds"]),
                "mean_predictor_rmse": results["models"]["mean_predictor"][target]["rmse"]["mean"],
                "ridge_rmse": results["models"].get("ridge_architecture", {}).get(target, {}).get("rmse", {}).get("mean"),
                "train_s": results.get("timing", {}).get("train_s"),
                "commit": results.get("commit"),
            }
            same_folds = reference is not None and reference["folds"] == results["folds"]
            if name != baseline and same_folds and target in reference["targets"]:
                difference = intervals.paired_difference(
                    per_fold_values(cnn["rmse"]), per_fold_values(reference["models"]["cnn"][target]["rmse"])
                )
                if difference:
                    row.update(delta_rmse_vs_baseline=difference["mean"], folds_better=difference["folds_lower"])
                    if difference["ci95"]:
                        row.update(delta_ci_low=difference["ci95"][0], delta_ci_high=difference["ci95"][1])
            rows.append(row)
    return rows


def _ci(stat: dict, side: int) -> float | None:
    return stat["ci95"][side] if stat.get("ci95") else None


def per_fold_values(stat: dict) -> np.ndarray:
    """A results.json metric's per-fold values, undefined folds (null) as NaN."""
    return np.array([np.nan if v is None else v for v in stat["per_fold"]], np.float64)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    lines = [",".join(COLUMNS)]
    for row in rows:
        lines.append(",".join("" if row[c] is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]))
                              for c in COLUMNS))
    path.write_text("\n".join(lines) + "\n")


def markdown_table(rows: list[dict[str, Any]], baseline: str) -> str:
    """Per target: each run's RMSE and R² with intervals, and its paired change from the baseline."""
    lines = []
    for target in dict.fromkeys(row["target"] for row in rows):
        target_rows = [row for row in rows if row["target"] == target]
        unit = target_rows[0]["unit"]
        lines += [f"#### {target} ({unit})", "",
                  f"| run | RMSE [95% CI] | R² [95% CI] | ΔRMSE vs {baseline} [95% CI] | folds better | mean predictor RMSE |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in target_rows:
            delta = "—"
            if row["delta_rmse_vs_baseline"] is not None:
                delta = format_interval(row["delta_rmse_vs_baseline"], row["delta_ci_low"], row["delta_ci_high"], "+.3g")
            better = f"{row['folds_better']}/{row['folds']}" if row["folds_better"] is not None else "—"
            rmse = format_interval(row["rmse"], row["rmse_ci_low"], row["rmse_ci_high"], ".3g")
            r2 = format_interval(row["r2"], row["r2_ci_low"], row["r2_ci_high"], ".3g")
            lines.append(f"| {row['run']} | {rmse} | {r2} | {delta} | {better} | {row['mean_predictor_rmse']:.4g} |")
        lines.append("")
    return "\n".join(lines)


def summary_table(rows: list[dict[str, Any]], baseline: str) -> str:
    """One row per run: held-out R² [95% CI] per target, then the paired ΔRMSE from the
    baseline [95% CI] with the folds it is better in; '—' where a run lacks the target."""
    targets = list(dict.fromkeys(row["target"] for row in rows))
    runs = list(dict.fromkeys(row["run"] for row in rows))
    by_key = {(row["run"], row["target"]): row for row in rows}
    units = {row["target"]: row["unit"] for row in rows}
    header = ["run"] + [f"{t} R²" for t in targets] + [f"ΔRMSE {t} ({units[t]})" for t in targets]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run in runs:
        cells = [run + (" (baseline)" if run == baseline and run != "baseline" else "")]
        for target in targets:
            row = by_key.get((run, target))
            cells.append("—" if row is None or row["r2"] is None else format_interval(row["r2"], row["r2_ci_low"], row["r2_ci_high"], ".3g"))
        for target in targets:
            row = by_key.get((run, target))
            if row is None or row["delta_rmse_vs_baseline"] is None:
                cells.append("—")
                continue
            cells.append(format_interval(row["delta_rmse_vs_baseline"], row["delta_ci_low"], row["delta_ci_high"], "+.2g")
                         + f" {row['folds_better']}/{row['folds']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_interval(value: float, low: float | None, high: float | None, spec: str, value_spec: str | None = None) -> str:
    """`value [low, high]` in `spec` (the value in `value_spec` if given); the value alone
    when there is no interval."""
    text = format(value, value_spec or spec)
    return text + (f" [{format(low, spec)}, {format(high, spec)}]" if low is not None else "")


def plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """One panel per target: each run's held-out R² (mean over folds, 95% interval)."""
    targets = list(dict.fromkeys(row["target"] for row in rows))
    runs = list(dict.fromkeys(row["run"] for row in rows))
    fig = Figure(figsize=(4.2 * len(targets), 0.45 * len(runs) + 1.6))
    axes = fig.subplots(1, len(targets), sharey=True, squeeze=False)
    for ax, target in zip(axes[0], targets):
        by_run = {row["run"]: row for row in rows if row["target"] == target}
        for y, run in enumerate(runs):
            row = by_run.get(run)
            if row is None or row["r2"] is None:
                continue
            low = row["r2"] - (row["r2_ci_low"] if row["r2_ci_low"] is not None else row["r2"])
            high = (row["r2_ci_high"] if row["r2_ci_high"] is not None else row["r2"]) - row["r2"]
            ax.errorbar(row["r2"], y, xerr=[[low], [high]], fmt="o", color="tab:red" if y == 0 else "black", capsize=3)
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")  # the mean predictor's R² is about 0
        ax.set_title(target)
        ax.set_xlabel("held-out R² (95% CI over folds)")
    axes[0, 0].set_yticks(range(len(runs)), runs)
    axes[0, 0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def read_results(directory: Path) -> dict | None:
    results_file = directory / "results.json"
    return json.loads(results_file.read_text()) if results_file.exists() else None
