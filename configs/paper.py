"""Paper scale (Cunningham et al. 2017): 19 participants, leave-one-participant-out, a full-size
model; meant for an accelerator.

Run:      python -m muscle_jax.main --config=configs/paper.py --workdir=runs/paper
Time:     not measured on a GPU yet (no accelerator has been lent); on the 2-core CPU one step
          took 140–163 s under other jobs' load (60–66 s of CPU time), weeks for the 20,000 steps;
          on one H100/H200 the arithmetic is projected at minutes and reading the data at
          hours (docs/scaling.md, `python experiments/paper_scale.py --config=configs/paper.py`).
Expected: held-out R² per target at least the default's; compare in kind with the study's RMSE
          (angle 0.022°, EMG 0.0001 V, torque 0.256 N·m), which came from real recordings.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset.builder_config = "phantom_paper"
    config.model.channels = (32, 64, 128, 256)
    config.model.hidden = 256
    config.model.dropout = 0.5
    config.train.batch_size = 64
    config.train.num_steps = 20_000
    config.train.learning_rate = 1e-3
    config.train.warmup_steps = 500
    config.train.log_every = 200
    config.train.checkpoint_every = 1000
    config.eval.batch_size = 512
    return config
