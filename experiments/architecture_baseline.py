"""Ridge regression on the architecture measured from every frame, beside a finished run's models.

    python experiments/architecture_baseline.py --workdir=runs/gasfastrack
    python experiments/architecture_baseline.py --workdir=runs/default

Reads the run's `run.json` (its config and folds) and `results.json` (the CNN and the other
baselines), rebuilds the same folds from the same dataset (refusing if they differ from the
ones the run recorded), measures architecture on every record's full frame with
`muscle_jax.architecture` (the phantom's rendered frames; a recordings layout's frames
decoded again), fits ridge regression from fascicle angle, pennation, thickness and fascicle
length to the states on each fold's training records only (`architecture.baseline`), and
writes `<workdir>/architecture_baseline.json` and `.md`: every model of the run plus
"ridge on measured architecture", mean ± sd over folds with 95 % bootstrap intervals, and
the CNN's per-fold RMSE minus this baseline's. The measured features are kept in
`<workdir>/architecture_features.csv`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import ml_collections
import numpy as np
from absl import flags

from muscle_jax import cli, evaluate, intervals, report
from muscle_jax.architecture import baseline
from muscle_jax.data import pipeline
from muscle_jax.folds import make_folds

MODEL = "ridge_measured_architecture"


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "a finished run (muscle_jax.main's --workdir)", required=True)


def main(argv: list[str]) -> None:
    del argv
    workdir = Path(flags.FLAGS.workdir)
    for name in ("run.json", "results.json"):
        if not (workdir / name).is_file():
            raise FileNotFoundError(f"{workdir / name}: not a finished run (run muscle_jax.main first)")
    run = json.loads((workdir / "run.json").read_text())
    results = json.loads((workdir / "results.json").read_text())
    config = ml_collections.ConfigDict(run["config"])
    source, _ = pipeline.load_source(config.dataset)
    index = pipeline.read_index(source, tuple(run["targets"]))
    folds = make_folds(index.groups(config.folds.group_by), config.folds.group_by, config.folds.num_folds,
                       config.folds.max_train_groups)
    recorded = [tuple(g) for g in run["held_out_groups"]]
    if [tuple(g) for g in folds.held_out_groups] != recorded:
        raise ValueError(f"{workdir / 'run.json'}: the run held out {recorded}, the dataset now gives "
                         f"{list(folds.held_out_groups)}: not the same folds")
    started = time.perf_counter()
    measured = baseline.measure_records(config.dataset, source, index)
    seconds = time.perf_counter() - started
    baseline.write_features_csv(workdir / "architecture_features.csv", index, measured)
    predictions = baseline.ridge_on_measured(measured, index.targets_NxT, folds, config.eval.ridge_alpha)
    per_fold = evaluate.fold_metrics(predictions, index.targets_NxT, folds)
    results["models"][MODEL] = report.fold_summaries(per_fold, index.target_names)
    comparison = {}
    for target in index.target_names:
        cnn = results["models"]["cnn"][target]["rmse"]["per_fold"]
        ours = results["models"][MODEL][target]["rmse"]["per_fold"]
        comparison[target] = intervals.paired_difference(cnn, ours)
    output = {"run": str(workdir), "dataset": results["dataset"], "records": len(index.frame_N),
              "measured_records": int(measured.found_N.sum()), "measure_seconds": round(seconds, 1),
              "features": list(baseline.FEATURES), "ridge_alpha": config.eval.ridge_alpha,
              "models": results["models"], "cnn_minus_ridge_measured_rmse": comparison}
    (workdir / "architecture_baseline.json").write_text(json.dumps(output, indent=1) + "\n")
    lines = [report.results_table(results), "",
             f"Ridge on measured architecture: {int(measured.found_N.sum())}/{len(index.frame_N)} records measured "
             f"({seconds:.0f} s); unmeasured records take their fold's training mean of each feature.", "",
             "| target | CNN RMSE − ridge on measured architecture RMSE, mean over folds [95 % CI] | folds where the CNN is better |",
             "| --- | --- | --- |"]
    for target, difference in comparison.items():
        ci = difference["ci95"]
        lines.append(f"| {target} | {difference['mean']:.4g} [{ci[0]:.4g}, {ci[1]:.4g}] | "
                     f"{difference['folds_lower']}/{difference['folds']} |" if ci else f"| {target} | {difference['mean']:.4g} | |")
    (workdir / "architecture_baseline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    cli.run(main, define_flags)
