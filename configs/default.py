"""The CPU default: phantom_small, leave-one-participant-out, convnet, all folds at once.

Run:      python -m muscle_jax.main --config=configs/default.py --workdir=runs/default
Time:     ≤ 5 min on a 2-core CPU, dataset build included (see README for the measured phases).
Expected: for every target (angle, torque, EMG) a mean held-out R² above 0.5 across folds and
          an RMSE below the mean-predictor baseline's in every fold (README's results table).
"""

import ml_collections

from muscle_jax import models, runtime


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.dataset = ml_collections.ConfigDict()
    config.dataset.name = "ultrasound_states"
    config.dataset.builder_config = "phantom_small"
    # Overrides of the phantom preset's fields (e.g. {"num_participants": 12}); a non-empty
    # dict builds a separately named dataset so it never collides with the preset.
    config.dataset.phantom_overrides = ml_collections.ConfigDict()
    config.dataset.data_dir = "data/tfds"
    config.dataset.manual_dir = ""  # real-recording layouts only; "" = the builder's default
    # Real layouts store exactly these targets; one a recording lacks is an error, never faked.
    config.dataset.targets = ("angle_deg", "torque_nm", "emg_v")
    # "" / () = the builder config's own. ROI source: "oracle" (true aponeuroses) or
    # "segmentation" (shipped U-Net) for a phantom, "calibration" or "segmentation" for real
    # layouts. ROI size (rows, columns), for a phantom the same as phantom_overrides.roi_hw.
    # skip_bad_frames: undecodable frames, or frames without a found muscle, are skipped and
    # counted instead of an error.
    config.dataset.roi_source = ""
    config.dataset.roi_hw = ()
    config.dataset.skip_bad_frames = False
    # Temporal context: the model sees each frame with the frame_stack − 1 frames before it in
    # its trial, as channels (1 = single frames, as in the 2017 study).
    config.dataset.frame_stack = 1
    # Architecture labels for the ridge baseline; those the dataset lacks are ignored.
    config.dataset.architecture_features = ("fascicle_length_mm", "pennation_deg", "thickness_mm")
    # Raw EMG (a recording's `emg_raw_v` column) → envelope `emg_v` (docs/recordings.md):
    # band-pass, full-wave rectification, low-pass; each Butterworth filter applied both ways.
    config.dataset.emg = ml_collections.ConfigDict(
        {"bandpass_hz": (20.0, 450.0), "lowpass_hz": 6.0, "order": 4, "min_rate_hz": 1000.0}
    )

    config.folds = ml_collections.ConfigDict()
    config.folds.group_by = "participant"  # or "trial" for one-participant recordings
    config.folds.num_folds = 0  # 0 = leave one group out; else grouped K-fold
    config.folds.max_train_groups = 0  # 0 = all other groups; n = only the first n (ablation)

    # What the model is: a family (muscle_jax/models) and the knobs set here; every other knob
    # takes the family's own default (convnet: channels (16, 32, 64, 128), hidden 256, norm none).
    config.model = models.model_config("convnet", dropout=0.1, input_norm="per_image")

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 32  # per fold
    config.train.num_steps = 350
    config.train.optimizer = "adamw"
    config.train.learning_rate = 2e-3
    config.train.weight_decay = 1e-4
    config.train.warmup_steps = 30
    config.train.grad_clip_norm = 1.0
    config.train.final_lr_fraction = 0.01  # the cosine decays to this fraction of learning_rate
    config.train.log_every = 25
    config.train.checkpoint_every = 100
    config.train.max_checkpoints = 2
    config.train.input_threads = 2

    # Training-time augmentation (muscle_jax/augment.py): what a new participant changes.
    config.augment = ml_collections.ConfigDict()
    config.augment.enabled = True
    config.augment.max_shift_px = 12
    config.augment.gamma = (0.8, 1.25)
    config.augment.gain = (0.7, 1.3)
    config.augment.offset = 0.08

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 256  # per fold
    config.eval.ridge_alpha = 1.0
    # A baseline beside the CNN: ridge regression on the architecture muscle_jax.architecture
    # measures from every record's full frame (what a tool like TimTrack would give). Off here:
    # measuring 6,000 phantom frames adds about a minute to the default job.
    config.eval.measured_architecture_baseline = False
    config.eval.plots = True

    # How this machine runs the model (muscle_jax/runtime): never part of the model; 'auto'
    # fields are measured on a CPU the first time and cached.
    config.runtime = runtime.default_settings()
    return config
