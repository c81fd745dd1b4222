"""Aponeurosis segmentation: the base recipe (configs/segmentation_architecture.py, which adds
small rotations and longer training, made the U-Net shipped in muscle_jax/segmentation/pretrained/).

Run (a checkpoint storing its validation metrics; this recipe shipped until the architecture stage):
          python -m muscle_jax.segmentation.train --config=configs/segmentation.py \
              --output=muscle_jax/segmentation/pretrained/unet_aponeurosis.msgpack
Time:     848 s of training (14 min) on the quiet 2-core CPU (2400 steps of 8 frames).
Reaches:  on the 64 DL_Track images held out by image, at each image's own size: mean Dice
          0.807 (median 0.862), mean IoU 0.699, median thickness error 0.91 px
          (docs/segmentation.md, experiments/segmentation_evaluate.py).
Quick check: --config=configs/segmentation.py:smoke (a few steps on a few images).
"""

from pathlib import Path

import ml_collections

from muscle_jax.segmentation.curves import default_roi_config

# ../shared/data relative to the repository root.
_DL_TRACK_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dl_track_aponeurosis"


def get_config(mode: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.dl_track_dir = str(_DL_TRACK_DIR)
    config.data.validation_fraction = 0.15  # whole images, stratified by image size (scanner)
    config.data.split_seed = 0
    config.data.max_images = 0  # 0 = all; n = the first n of each split (smoke runs)
    # Rendered phantom frames with their true masks added to the training images (0 = none;
    # the shipped model uses none). Drawn from other simulated people than any regression set.
    config.data.phantom_frames = 0
    config.data.phantom_preset = "phantom_small"

    # Frames are resized (antialiased) to this height × width before the network; predicted
    # probabilities are resized back to the frame's size. Height matters more than width:
    # the aponeuroses are thin, near-horizontal bands.
    config.input_hw = (256, 128)

    config.model = ml_collections.ConfigDict()
    config.model.features = 8
    config.model.depth = 4
    config.model.norm_groups = 0  # GroupNorm groups; 0 = none (CPU-cheap, window-safe)

    config.augment = ml_collections.ConfigDict()
    config.augment.crop_hw = (0, 0)  # training window; (0, 0) = the whole working frame (context: which band is which)
    config.augment.flip_probability = 0.5
    config.augment.scale_range = (0.8, 1.25)  # zoom; > 1 magnifies (crops)
    config.augment.aspect_jitter = 0.1  # log-scale jitter of height vs width
    config.augment.max_shift_fraction = 0.1
    config.augment.gain_range = (0.6, 1.4)
    config.augment.gamma_range = (0.7, 1.4)
    config.augment.speckle_sigma_max = 0.3  # multiplicative noise, per pixel
    config.augment.noise_sigma_max = 0.03  # additive noise, in [0, 1] intensity units

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 8
    config.train.num_steps = 2400
    config.train.learning_rate = 2e-3
    config.train.warmup_steps = 50
    config.train.weight_decay = 1e-4
    config.train.optimizer = "adamw"
    config.train.grad_clip_norm = 0.0  # no clipping
    config.train.final_lr_fraction = 0.0  # the cosine decays to zero
    config.train.dice_weight = 1.0  # loss = BCE + dice_weight · (1 − soft Dice)
    config.train.log_every = 50
    config.train.init_checkpoint = ""  # start from these weights instead of a fresh initialisation

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 16
    config.eval.threshold = 0.5

    config.roi = default_roi_config()  # curve degree and plausibility bounds (segmentation/curves.py)

    if mode == "smoke":
        config.data.max_images = 8
        config.input_hw = (64, 32)
        config.augment.crop_hw = (32, 32)
        config.train.batch_size = 4
        config.train.num_steps = 4
        config.train.warmup_steps = 1
        config.train.log_every = 2
    elif mode:
        raise ValueError(f"configs/segmentation.py knows the mode 'smoke', got {mode!r}")
    return config
