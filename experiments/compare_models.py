"""A finished run's CNN against its baselines, fold by fold, with intervals.

    python experiments/compare_models.py --workdir=runs/default

Prints a Markdown table: per target, each model's held-out RMSE and R² (mean over folds,
95% bootstrap interval), and the paired per-fold difference of the CNN's RMSE from each
baseline's (negative = the CNN is better) with its interval and the folds it is better in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from muscle_jax import cli, intervals, report, sweeps  # noqa: E402


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A finished run's workdir (holds results.json).")
    flags.mark_flag_as_required("workdir")


def _interval(stat: dict) -> str:
    low, high = stat.get("ci95") or (None, None)
    return sweeps.format_interval(stat["mean"], low, high, ".3g", value_spec=".4g")


def table(results: dict) -> str:
    lines = [f"Run {results['commit']} on `{results['dataset']}`, {len(results['folds'])} folds by {results['group_by']}; "
             "mean over folds [95% bootstrap interval]; ΔRMSE = CNN − baseline, paired by fold.", "",
             "| target | model | RMSE | R² | CNN ΔRMSE vs this model | folds CNN better |",
             "| --- | --- | --- | --- | --- | --- |"]
    models = results["models"]
    for target in results["targets"]:
        cnn_rmse = sweeps.per_fold_values(models["cnn"][target]["rmse"])
        for name, summary in models.items():
            delta, better = "—", "—"
            if name != "cnn":
                difference = intervals.paired_difference(cnn_rmse, sweeps.per_fold_values(summary[target]["rmse"]))
                low, high = difference["ci95"] or (None, None)
                delta = sweeps.format_interval(difference["mean"], low, high, "+.3g")
                better = f"{difference['folds_lower']}/{difference['folds']}"
            lines.append(f"| {target} ({results['units'][target]}) | {report.MODEL_TITLES.get(name, name)} | "
                         f"{_interval(summary[target]['rmse'])} | {_interval(summary[target]['r2'])} | {delta} | {better} |")
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    results_file = Path(flags.FLAGS.workdir) / "results.json"
    if not results_file.exists():
        raise FileNotFoundError(f"{results_file} not found: {flags.FLAGS.workdir} is not a finished run")
    print(table(json.loads(results_file.read_text())))


if __name__ == "__main__":
    cli.run(main, define_flags)
