"""GasFasTrack: one participant's 24 real clips, angle and torque, folds of held-out clips.

Run:      python -m muscle_jax.main --config=configs/gasfastrack.py --workdir=runs/gasfastrack
Time:     measured in docs/recordings.md (target ≤ 20 min on a 2-core CPU, dataset build included).
Expected: per-fold RMSE / R² for angle_deg and torque_nm on held-out clips (docs/recordings.md).

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
