"""Tiny everything, for tests and a quick check that the whole job runs.

Run:      python -m muscle_jax.main --config=configs/smoke.py --workdir=runs/smoke
Time:     well under a minute on a 2-core CPU.
Expected: completes and writes results.json/results.md/plots; the numbers mean nothing.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset.builder_config = "phantom_smoke"
    config.model.channels = (4, 8)
    config.model.hidden = 16
    config.train.batch_size = 8
    config.train.num_steps = 8
    config.train.warmup_steps = 2
    config.train.log_every = 2
    config.train.checkpoint_every = 2
    config.eval.batch_size = 32
    config.runtime.measure = ()  # seconds matter more than speed here: the CPU defaults, unmeasured
    return config
