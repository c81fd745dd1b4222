"""Entry point: python -m muscle_jax.main --config=configs/default.py --workdir=runs/default

Fields of the config can be overridden with --config.<field>=<value>; the config is locked,
so a misspelled field is an error rather than a silent no-op.
"""

from __future__ import annotations

import logging
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from muscle_jax import allocator, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, results and plots.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.getLogger().setLevel(logging.INFO)
    # orbax and tfds log every file operation through absl at INFO; keep the run's own lines readable.
    logging.getLogger("absl").setLevel(logging.WARNING)
    if _CONFIG.value.train.huge_pages:
        allocator.reexec_with_huge_pages()  # restarts this command once, before any work
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print((Path(_WORKDIR.value) / "results.md").read_text())


if __name__ == "__main__":
    app.run(main)
