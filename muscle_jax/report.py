"""What a run leaves in its workdir: run.json, results.json, results.md and plots.

run.json     written before training: config, targets, folds, label statistics, image shape —
             everything `muscle_jax.ensemble` needs to use the trained fold models later.
results.json the held-out metrics per model (cnn and baselines), target, fold; mean ± sd
             across folds; timings; the commit and machine. Schema in README.
results.md   the same as a table.
plots/       predicted vs measured time series, one PNG per held-out group.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from muscle_jax import intervals, metric_writer, runtime
from muscle_jax.data.pipeline import LabelStats, RecordIndex
from muscle_jax.folds import Folds
from muscle_jax.models import family_knobs
from muscle_jax.runtime import machine

UNITS = {"angle_deg": "°", "torque_nm": "N·m", "emg_v": "V"}
METRICS = ("rmse", "nrmse_pct", "r2", "pearson_r")
MODEL_TITLES = {"cnn": "CNN", "mean_predictor": "mean predictor", "ridge_architecture": "ridge on architecture",
                "ridge_measured_architecture": "ridge on measured architecture"}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")


def write_run_info(workdir: Path, config, info, index: RecordIndex, folds: Folds, stats: LabelStats, image_shape,
                   rt: runtime.Runtime, config_changes: list[str] = ()) -> None:
    """Records what the fold models are (the model's resolved knobs, not how this machine ran
    them) and how their outputs map back to physical units; the runtime beside, as a record."""
    write_json(workdir / "run.json", {
        "config": config.to_dict(),
        "dataset": info.full_name,
        "model": family_knobs(config.model),
        "targets": list(index.target_names),
        "image_shape": list(image_shape),
        "num_folds": folds.num_folds,
        "group_by": folds.group_by,
        "held_out_groups": [list(g) for g in folds.held_out_groups],
        "label_stats": stats.to_json(),
        "runtime": rt.to_json(),
        "resumed_with_config_changes": list(config_changes),
    })


def _commit() -> str:
    try:
        repo = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fold_summaries(per_fold: list[dict[str, np.ndarray]], target_names) -> dict:
    """Per target and metric: mean, sd and 95 % bootstrap interval over folds, and the per-fold values."""
    summary = {}
    for t, name in enumerate(target_names):
        summary[name] = {}
        for metric in METRICS:
            values = np.array([fold[metric][t] for fold in per_fold], np.float64)
            finite = values[np.isfinite(values)]  # Pearson r is undefined for a constant predictor
            ci95 = intervals.bootstrap_mean_ci(values)
            summary[name][metric] = {
                "mean": float(finite.mean()) if finite.size else None,
                "sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
                "ci95": list(ci95) if ci95 else None,
                "per_fold": [float(v) if np.isfinite(v) else None for v in values],
            }
    return summary


def write_results(workdir: Path, config, info, index: RecordIndex, folds: Folds, evaluation, timings,
                  rt: runtime.Runtime) -> dict[str, Any]:
    """Writes results.json, results.md and the plots; returns the results dict."""
    results = {
        "dataset": info.full_name,
        "targets": list(index.target_names),
        "units": {name: UNITS[name] for name in index.target_names},
        "group_by": folds.group_by,
        "folds": [
            {"fold": k, "held_out": list(folds.held_out_groups[k]),
             "num_train": int(folds.train_KxN[k].sum()), "num_test": int(folds.test_KxN[k].sum())}
            for k in range(folds.num_folds)
        ],
        "models": {name: fold_summaries(per_fold, index.target_names) for name, per_fold in evaluation["per_fold"].items()},
        "timing": {k: round(v, 2) for k, v in timings.items()},
        "commit": _commit(),
        "machine": machine.one_line(),
        "runtime": rt.to_json(),
        "config": config.to_dict(),
    }
    write_json(workdir / "results.json", results)
    (workdir / "results.md").write_text(results_table(results))
    if config.eval.plots:
        plot_time_series(workdir / "plots", index, folds, evaluation["predictions"])
        plot_loss_curve(workdir / "plots" / "loss.png", metric_writer.read_metrics(workdir))
    return results


def results_table(results: dict[str, Any]) -> str:
    """Markdown table: per model and target, held-out metrics as mean ± sd across folds."""
    lines = [
        f"Held-out results on `{results['dataset']}`, {len(results['folds'])} folds by {results['group_by']} "
        f"(mean ± sd across folds, [95% bootstrap interval of the mean over folds]). "
        f"Commit {results['commit']}; {results['machine']}.",
        "",
        "| target | model | RMSE | nRMSE % | R² | Pearson r |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for target in results["targets"]:
        for model, summary in results["models"].items():
            cells = [_mean_sd(summary[target][m]) for m in METRICS]
            lines.append(f"| {target} ({results['units'][target]}) | {MODEL_TITLES.get(model, model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _mean_sd(stat: dict) -> str:
    if stat["mean"] is None:
        return "—"
    text = f"{stat['mean']:.4g}" + (f" ± {stat['sd']:.2g}" if stat["sd"] is not None else "")
    if stat.get("ci95"):
        text += f" [{stat['ci95'][0]:.3g}, {stat['ci95'][1]:.3g}]"
    return text


def plot_time_series(directory: Path, index: RecordIndex, folds: Folds, predictions: dict[str, np.ndarray]) -> None:
    """One PNG per held-out group: measured and predicted states over the group's frames."""
    directory.mkdir(parents=True, exist_ok=True)
    num_targets = len(index.target_names)
    for k, test_N in enumerate(folds.test_KxN):
        order = np.flatnonzero(test_N)
        order = order[np.lexsort((index.frame_N[order], index.trial_N[order], index.participant_N[order]))]
        fig = Figure(figsize=(10, 2.2 * num_targets))
        axes = fig.subplots(num_targets, 1, sharex=True, squeeze=False)
        x = np.arange(len(order))
        for t, name in enumerate(index.target_names):
            ax = axes[t, 0]
            ax.plot(x, index.targets_NxT[order, t], color="black", lw=1.2, label="measured")
            ax.plot(x, predictions["cnn"][order, t], color="tab:red", lw=0.9, label="CNN")
            if "ridge_architecture" in predictions:
                ax.plot(x, predictions["ridge_architecture"][order, t], color="tab:blue", lw=0.7, alpha=0.7,
                        label="ridge on architecture")
            ax.set_ylabel(f"{name} ({UNITS[name]})")
            for boundary in np.flatnonzero(np.diff(index.trial_N[order]) != 0):
                ax.axvline(boundary + 0.5, color="grey", lw=0.5, ls=":")
        axes[0, 0].legend(loc="upper right", fontsize=8, ncol=3)
        axes[-1, 0].set_xlabel("held-out frame (trials concatenated, dotted lines between trials)")
        held_out = ", ".join(str(g) for g in folds.held_out_groups[k])
        fig.suptitle(f"fold {k}: held-out {folds.group_by} {held_out}")
        fig.tight_layout()
        fig.savefig(directory / f"fold{k:02d}_{folds.group_by}_{held_out.replace(', ', '-')}.png", dpi=90)


def plot_loss_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    """Training loss per step, each fold's and their mean, on a log scale (from metrics.jsonl)."""
    if not rows:
        return
    steps = [row["step"] for row in rows]
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    fold_keys = sorted((k for k in rows[0] if k.startswith("loss/fold")), key=lambda k: int(k.split("fold")[1]))
    for key in fold_keys:
        ax.plot(steps, [row[key] for row in rows], lw=0.6, alpha=0.5)
    ax.plot(steps, [row["loss"] for row in rows], color="black", lw=1.4, label="mean over folds")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE, standardised targets)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
