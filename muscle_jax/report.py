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
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from muscle_jax import intervals
from muscle_jax.data.pipeline import LabelStats, RecordIndex
from muscle_jax.folds import Folds

UNITS = {"angle_deg": "°", "torque_nm": "N·m", "emg_v": "V"}
METRICS = ("rmse", "nrmse_pct", "r2", "pearson_r")
MODEL_TITLES = {"cnn": "CNN", "mean_predictor": "mean predictor", "ridge_architecture": "ridge on architecture",
                "ridge_measured_architecture": "ridge on measured architecture"}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")


def write_run_info(workdir: Path, config, index: RecordIndex, folds: Folds, stats: LabelStats, image_shape) -> None:
    """Records what the fold models are and how their outputs map back to physical units."""
    write_json(workdir / "run.json", {
        "config": config.to_dict(),
        "targets": list(index.target_names),
        "image_shape": list(image_shape),
        "num_folds": folds.num_folds,
        "group_by": folds.group_by,
        "held_out_groups": [list(g) for g in folds.held_out_groups],
        "label_stats": stats.to_json(),
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


def _machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}"


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


def write_results(workdir: Path, config, info, index: RecordIndex, folds: Folds, evaluation, timings) -> dict[str, Any]:
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
        "machine": _machine(),
        "config": config.to_dict(),
    }
    write_json(workdir / "results.json", results)
    (workdir / "results.md").write_text(results_table(results))
    if config.eval.plots:
        plot_time_series(workdir / "plots", index, folds, evaluation["predictions"])
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    num_targets = len(index.target_names)
    for k, test_N in enumerate(folds.test_KxN):
        order = np.flatnonzero(test_N)
        order = order[np.lexsort((index.frame_N[order], index.trial_N[order], index.participant_N[order]))]
        fig, axes = plt.subplots(num_targets, 1, figsize=(10, 2.2 * num_targets), sharex=True, squeeze=False)
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
        plt.close(fig)
