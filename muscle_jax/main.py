"""Entry point: python -m muscle_jax.main --config=configs/default.py --workdir=runs/default

Fields of the config can be overridden with --config.<field>=<value>; the config is locked,
so a misspelled field is an error rather than a silent no-op.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags
from ml_collections import config_flags

from muscle_jax import cli, distributed, train


def define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, results and plots.")
    flags.DEFINE_boolean("resume_with_changed_config", False,
                         "Continue from the workdir's checkpoints although they were trained with another config.")
    flags.mark_flags_as_required(["config", "workdir"])
    # One job over several processes (muscle_jax/distributed.py, docs/scaling.md); under SLURM
    # with several tasks these are read from SLURM's variables instead.
    flags.DEFINE_string("coordinator_address", "", "Multi-process job: <host>:<port> of process 0's coordinator.")
    flags.DEFINE_integer("num_processes", 0, "Multi-process job: how many processes run it.")
    flags.DEFINE_integer("process_id", -1, "Multi-process job: this process's rank, 0 … num_processes − 1.")


def main(argv: list[str]) -> None:
    distributed.initialize(flags.FLAGS.coordinator_address, flags.FLAGS.num_processes, flags.FLAGS.process_id)
    results = train.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir, flags.FLAGS.resume_with_changed_config)
    if results is not None:  # process 0 of a multi-process job, or the only process
        print((Path(flags.FLAGS.workdir) / "results.md").read_text())


if __name__ == "__main__":
    cli.run(main, define_flags)
