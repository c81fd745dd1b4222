"""Entry point: python -m muscle_jax.main --config=configs/default.py --workdir=runs/default

Fields of the config can be overridden with --config.<field>=<value>; the config is locked,
so a misspelled field is an error rather than a silent no-op.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags
from ml_collections import config_flags

from muscle_jax import cli, train


def define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, results and plots.")
    flags.DEFINE_boolean("resume_with_changed_config", False,
                         "Continue from the workdir's checkpoints although they were trained with another config.")
    flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    train.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir, flags.FLAGS.resume_with_changed_config)
    print((Path(flags.FLAGS.workdir) / "results.md").read_text())


if __name__ == "__main__":
    cli.run(main, define_flags)
