"""GasFasTrack: one participant's 24 real clips, angle and torque, folds of held-out clips.

Run:      python -m muscle_jax.main --config=configs/gasfastrack.py --workdir=runs/gasfastrack
Time:     2.5 min on the quiet 2-core CPU with the dataset already built (the dataset build
          adds about 30 s the first time); 5 min 22 s measured while another run shared it.
Expected: held-out clips, mean over 6 folds [95% bootstrap interval]: angle_deg RMSE 2.22°
          [1.94, 2.51], R² 0.983; torque_nm RMSE 9.53 N·m [7.49, 12.3], R² 0.949 (mean
          predictor R² ≈ 0). experiments/REPORT.md, section 4, has the ablations.

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
    config.eval.measured_architecture_baseline = True  # what the architecture measured from the clips predicts
    return config
