"""GasFasTrack: one participant's 24 real clips, angle and torque, folds of held-out clips.

Run:      python -m muscle_jax.main --config=configs/gasfastrack.py --workdir=runs/gasfastrack
Time:     1689 s measured on the shared 2-core machine under load average ≈ 10 (the job got
          ~43 % of one core, ~730 CPU-s); aimed at ≤ 20 min on an idle 2-core CPU (estimated
          6–12 min there from the CPU-seconds, not measured).
Expected: held-out clips, mean over 6 folds: angle_deg RMSE 3.2° R² 0.96, torque_nm RMSE
          11.9 N·m R² 0.91 (mean predictor R² ≈ 0); per-fold table in docs/recordings.md.

Data: ../shared/data/gasfastrack (the builder's default manual dir), ROIs from the scanner
image region of its calibration (p6_params.mat) resized to 64×64. With a single participant
the folds hold out whole clips (trials): grouped 6-fold, each fold testing four clips dealt
round-robin from the sorted clip names, so every condition (isokinetic speeds, isometric,
passive) appears in several folds. Held-out clips are other repetitions of movements the
model has seen from the same leg: these figures say how well a clip is tracked, not how
well an unseen person would be.
"""

from configs import default
from muscle_jax.data import recordings


def get_config():
    config = default.get_config()
    config.dataset.builder_config = "gasfastrack"
    config.dataset.manual_dir = str(recordings.DEFAULT_MANUAL_DIRS["gasfastrack"])
    config.dataset.targets = ("angle_deg", "torque_nm")
    config.folds.group_by = "trial"
    config.folds.num_folds = 6
    config.train.num_steps = 300
    return config
