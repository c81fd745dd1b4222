"""Runs a sweep of config overrides, here or on a SLURM cluster, and compares the runs.

    python experiments/sweep.py --config=configs/default.py \
        --sweep=experiments/sweeps/phantom_architecture.py [--root=runs/sweeps] \
        [--launch=local|slurm|print] [--max_parallel=1] [--collect]

Each run is `python -m muscle_jax.main --config=<config> --workdir=<root>/<sweep>/<run>
--config.<field>=<value> ...`:
- `--launch=local` (default): as processes on this machine through submitit's local
  executor, at most `--max_parallel` at once (each run uses every core: more than one at
  once pays only where memory and cores are plentiful); the tables are written when all are
  done;
- `--launch=slurm`: as one SLURM job array through submitit (`--slurm_partition`,
  `--slurm_gpus_per_run`, `--slurm_time_min`, ...; docs/scaling.md), returning once queued;
  then `--collect` writes the tables from the runs that have finished;
- `--launch=print`: prints the commands, to launch elsewhere.
A run whose results.json exists is skipped, and so is one whose SLURM job is still queued or
running; an interrupted run resumes from its checkpoint. `<root>/<sweep>/sweep.csv`,
`sweep.md` and `sweep.png` compare every finished run with the sweep's baseline, fold by
fold, with 95% bootstrap intervals over folds (muscle_jax/sweeps.py, muscle_jax/intervals.py).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from muscle_jax import cli, sweep_launch, sweeps  # noqa: E402
from muscle_jax.data import pipeline  # noqa: E402

RUN_FILE = "sweep_run.json"  # what the sweep asked of a run directory, checked on every rerun
SUBMITIT_DIR = "submitit"  # under <root>/<sweep>: submitit's job files and logs


def define_flags() -> None:
    flags.DEFINE_string("config", None, "Base config file (configs/*.py[:mode]).")
    flags.DEFINE_string("sweep", None, "Sweep file (experiments/sweeps/*.py).")
    flags.DEFINE_string("root", "runs/sweeps", "Runs go to <root>/<sweep name>/<run name>.")
    flags.DEFINE_enum("launch", "local", ["local", "slurm", "print"],
                      "Where the runs execute: processes here or a SLURM job array (both through submitit), or "
                      "nowhere (print the commands).")
    flags.DEFINE_integer("max_parallel", 1, "Runs at once: local processes, or the SLURM array's running tasks.")
    flags.DEFINE_boolean("collect", False, "Launch nothing: write the tables from the runs that have finished.")
    flags.DEFINE_string("slurm_partition", "", "SLURM partition ('' = the cluster's default).")
    flags.DEFINE_integer("slurm_gpus_per_run", 0, "GPUs each run asks for (SLURM --gpus-per-node).")
    flags.DEFINE_integer("slurm_cpus_per_run", 4, "CPUs each run asks for (SLURM --cpus-per-task).")
    flags.DEFINE_integer("slurm_mem_gb", 32, "Memory each run asks for, GB (SLURM --mem).")
    flags.DEFINE_integer("slurm_time_min", 120, "Time limit of each run, minutes (SLURM --time).")
    flags.DEFINE_multi_string("slurm_setup", [], "A shell line run before each run on the node (repeatable), "
                              "e.g. 'source .venv/bin/activate'.")
    flags.mark_flags_as_required(["config", "sweep"])


def command(config: str, workdir: Path, run: sweeps.Run) -> list[str]:
    return [sys.executable, "-m", "muscle_jax.main", f"--config={config}", f"--workdir={workdir}", *run.flags()]


def claim(workdir: Path, config: str, run: sweeps.Run) -> dict:
    """Records what this directory runs; refuses a directory that holds another run."""
    asked = {"config": config, "overrides": {k: sweeps.flag_value(v) for k, v in run.overrides.items()}}
    record = workdir / RUN_FILE
    if record.exists():
        previous = json.loads(record.read_text())
        if {k: previous.get(k) for k in asked} != asked:
            raise ValueError(f"{workdir} holds a run with other settings ({record}: {previous}); "
                             f"delete it or rename the run in the sweep file")
        return previous
    workdir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(asked, indent=2) + "\n")
    return asked


def update_record(workdir: Path, **fields) -> None:
    record = workdir / RUN_FILE
    record.write_text(json.dumps({**json.loads(record.read_text()), **fields}, indent=2) + "\n")


def runs_to_launch(sweep: sweeps.Sweep, directory: Path, config: str, launch: str) -> list[sweeps.Run]:
    """The sweep's runs that are neither finished nor (on SLURM) still queued or running."""
    todo = []
    for number, run in enumerate(sweep.runs, start=1):
        workdir = directory / run.name
        record = claim(workdir, config, run)
        label = f"[{number}/{len(sweep.runs)}] {run.name}"
        if sweeps.read_results(workdir) is not None:
            print(f"{label}: finished before, skipped", flush=True)
        elif launch == "slurm" and record.get("slurm_job") and sweep_launch.job_is_active(
                directory / SUBMITIT_DIR, record["slurm_job"]):
            print(f"{label}: SLURM job {record['slurm_job']} is still queued or running, not submitted again", flush=True)
        else:
            todo.append(run)
    return todo


def build_datasets(configs: list) -> None:
    """Builds, one at a time, each dataset the runs will read (a relative `dataset.data_dir`
    is the repository's, where the runs start), so that runs started together never build
    one dataset at once."""
    built = set()
    for config in configs:
        dataset = config.dataset.copy_and_resolve_references()
        with dataset.unlocked():
            dataset.data_dir = str(REPO / Path(dataset.data_dir).expanduser())  # an absolute path stays itself
        builder = pipeline.builder_from_config(dataset)
        if (builder.data_dir, builder.builder_config.name) not in built:
            print(f"dataset {builder.builder_config.name} in {dataset.data_dir}: built before the runs start "
                  "(if it is not yet)", flush=True)
            pipeline.load_source(dataset)
            built.add((builder.data_dir, builder.builder_config.name))


def launch_local(runs: list[sweeps.Run], directory: Path, config: str, max_parallel: int) -> None:
    executor = sweep_launch.make_executor("local", directory / SUBMITIT_DIR, directory.name, max_parallel)
    workdirs = [directory / run.name for run in runs]
    print(f"{len(runs)} runs, at most {max_parallel} at once (logs: <run>/log.txt)", flush=True)

    def done(i: int, seconds: float) -> None:
        update_record(workdirs[i], wall_s=round(seconds, 1))
        print(f"{runs[i].name}: done in {seconds / 60:.1f} min", flush=True)

    failures = sweep_launch.run_locally(executor, [command(config, w, r) for w, r in zip(workdirs, runs)], REPO,
                                        [w / "log.txt" for w in workdirs], max_parallel, done)
    if failures:
        raise RuntimeError(f"{len(failures)} run(s) failed: " + "; ".join(failures))


def launch_slurm(runs: list[sweeps.Run], directory: Path, config: str, max_parallel: int,
                 resources: sweep_launch.SlurmResources) -> list:
    executor = sweep_launch.make_executor("slurm", directory / SUBMITIT_DIR, directory.name, max_parallel, resources)
    workdirs = [directory / run.name for run in runs]
    jobs = sweep_launch.submit_runs(executor, [command(config, w, r) for w, r in zip(workdirs, runs)], REPO,
                                    [w / "log.txt" for w in workdirs])
    for workdir, run, job in zip(workdirs, runs, jobs):
        update_record(workdir, slurm_job=job.job_id)
        print(f"{run.name}: SLURM job {job.job_id}", flush=True)
    return jobs


def main(argv: list[str]) -> None:
    FLAGS = flags.FLAGS
    if FLAGS.max_parallel < 1:
        raise ValueError(f"--max_parallel must be >= 1, got {FLAGS.max_parallel}")
    sweep = sweeps.load_sweep(FLAGS.sweep)
    configs = sweeps.validate(sweep, sweeps.load_config(FLAGS.config))
    directory = Path(FLAGS.root).resolve() / sweep.name
    started = time.perf_counter()
    if FLAGS.launch == "print" and not FLAGS.collect:
        for run in sweep.runs:
            print(shlex.join(command(FLAGS.config, directory / run.name, run)))
    elif not FLAGS.collect:
        runs = runs_to_launch(sweep, directory, FLAGS.config, FLAGS.launch)
        if runs:
            build_datasets([configs[run.name] for run in runs])
        if FLAGS.launch == "local" and runs:
            launch_local(runs, directory, FLAGS.config, FLAGS.max_parallel)
        elif FLAGS.launch == "slurm" and runs:
            resources = sweep_launch.SlurmResources(
                FLAGS.slurm_partition, FLAGS.slurm_gpus_per_run, FLAGS.slurm_cpus_per_run, FLAGS.slurm_mem_gb,
                FLAGS.slurm_time_min, tuple(FLAGS.slurm_setup))
            launch_slurm(runs, directory, FLAGS.config, FLAGS.max_parallel, resources)
            print(f"queued; when the jobs are done: python experiments/sweep.py --config={FLAGS.config} "
                  f"--sweep={FLAGS.sweep} --root={FLAGS.root} --collect")
            return
    collect(sweep, directory, FLAGS.config, time.perf_counter() - started)


def collect(sweep: sweeps.Sweep, directory: Path, config: str, seconds: float) -> None:
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
        f"`python experiments/sweep.py --config={config} --sweep={sweep.path}`", "",
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
    cli.run(main, define_flags)
