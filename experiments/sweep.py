"""Runs a sweep of config overrides and compares the runs.

    python experiments/sweep.py --config=configs/default.py \
        --sweep=experiments/sweeps/phantom_architecture.py [--root=runs/sweeps] [--launch=print]

Each run is `python -m muscle_jax.main --config=<config> --workdir=<root>/<sweep>/<run>
--config.<field>=<value> ...`, one after another (`--launch=print` prints the commands to
launch elsewhere and only collects what has finished). A run whose results.json exists is
skipped; an interrupted run resumes from its checkpoint. Then `<root>/<sweep>/sweep.csv`,
`sweep.md` and `sweep.png` compare every finished run with the sweep's baseline, fold by fold,
with 95% bootstrap intervals over folds (muscle_jax/sweeps.py, muscle_jax/intervals.py).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from muscle_jax import sweeps  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "Base config file (configs/*.py[:mode]).")
_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (experiments/sweeps/*.py).")
_ROOT = flags.DEFINE_string("root", "runs/sweeps", "Runs go to <root>/<sweep name>/<run name>.")
_LAUNCH = flags.DEFINE_enum("launch", "local", ["local", "print"], "Run here one after another, or print the commands.")
flags.mark_flags_as_required(["config", "sweep"])

RUN_FILE = "sweep_run.json"  # what the sweep asked of a run directory, checked on every rerun


def command(config: str, workdir: Path, run: sweeps.Run) -> list[str]:
    return [sys.executable, "-m", "muscle_jax.main", f"--config={config}", f"--workdir={workdir}", *run.flags()]


def claim(workdir: Path, config: str, run: sweeps.Run) -> dict:
    """Records what this directory runs; refuses a directory that holds another run."""
    asked = {"config": config, "overrides": {k: sweeps.flag_value(v) for k, v in run.overrides.items()}}
    record = workdir / RUN_FILE
    if record.exists():
        previous = json.loads(record.read_text())
        if {k: previous.get(k) for k in asked} != asked:
            raise SystemExit(f"{workdir} holds a run with other settings ({record}: {previous}); "
                             f"delete it or rename the run in the sweep file")
        return previous
    workdir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(asked, indent=2) + "\n")
    return asked


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    sweep = sweeps.load_sweep(_SWEEP.value)
    sweeps.validate(sweep, sweeps.load_config(_CONFIG.value))
    directory = Path(_ROOT.value) / sweep.name
    started = time.perf_counter()
    for number, run in enumerate(sweep.runs, start=1):
        workdir = directory / run.name
        argv_run = command(_CONFIG.value, workdir, run)
        if _LAUNCH.value == "print":
            print(shlex.join(argv_run))
            continue
        record = claim(workdir, _CONFIG.value, run)
        if sweeps.read_results(workdir) is not None:
            print(f"[{number}/{len(sweep.runs)}] {run.name}: finished before, skipped", flush=True)
            continue
        print(f"[{number}/{len(sweep.runs)}] {run.name}: running (log {workdir / 'log.txt'})", flush=True)
        run_start = time.perf_counter()
        with open(workdir / "log.txt", "a") as log:
            status = subprocess.run(argv_run, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - run_start
        if status != 0:
            raise SystemExit(f"run {run.name} failed (exit {status}); see {workdir / 'log.txt'}")
        (workdir / RUN_FILE).write_text(json.dumps({**record, "wall_s": round(seconds, 1)}, indent=2) + "\n")
        print(f"[{number}/{len(sweep.runs)}] {run.name}: done in {seconds / 60:.1f} min", flush=True)
    collect(sweep, directory, time.perf_counter() - started)


def collect(sweep: sweeps.Sweep, directory: Path, seconds: float) -> None:
    results = {run.name: sweeps.read_results(directory / run.name) for run in sweep.runs}
    finished = {name: r for name, r in results.items() if r is not None}
    missing = [name for name, r in results.items() if r is None]
    if not finished:
        print(f"no finished runs under {directory} yet")
        return
    rows = sweeps.comparison_rows(finished, sweep.baseline)
    directory.mkdir(parents=True, exist_ok=True)
    sweeps.write_csv(directory / "sweep.csv", rows)
    wall = {run.name: json.loads((directory / run.name / RUN_FILE).read_text()).get("wall_s")
            for run in sweep.runs if (directory / run.name / RUN_FILE).exists()}
    header = [
        f"### Sweep `{sweep.name}`", "",
        f"`python experiments/sweep.py --config={_CONFIG.value} --sweep={sweep.path}`", "",
        sweep.description, "",
        f"Runs: {len(finished)} of {len(sweep.runs)} finished"
        + (f" (missing: {', '.join(missing)})" if missing else "")
        + f"; commits {', '.join(sorted({str(r.get('commit')) for r in finished.values()}))}; "
        f"run wall times (min): {', '.join(f'{n} {w / 60:.1f}' for n, w in wall.items() if w)}.",
        "Held-out CNN metrics, mean over folds with 95% bootstrap intervals; ΔRMSE is the paired "
        f"per-fold difference from `{sweep.baseline}` (negative = better), with the folds it is better in.", "",
    ]
    summary = ["#### Summary", "", sweeps.summary_table(rows, sweep.baseline), "ΔRMSE: paired per-fold difference "
               "from the baseline [95% CI], then the folds it is better in.", ""]
    (directory / "sweep.md").write_text("\n".join(header + summary) + sweeps.markdown_table(rows, sweep.baseline))
    sweeps.plot(directory / "sweep.png", rows, f"sweep {sweep.name}")
    print((directory / "sweep.md").read_text())
    print(f"wrote {directory}/sweep.csv, sweep.md, sweep.png ({seconds / 60:.1f} min this invocation)")


if __name__ == "__main__":
    app.run(main)
