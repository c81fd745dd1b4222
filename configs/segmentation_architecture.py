"""Aponeurosis U-Net for the architecture stage: configs/segmentation.py with small rotations and longer training.

Run:      python -m muscle_jax.segmentation.train --config=configs/segmentation_architecture.py \
              --output=muscle_jax/segmentation/pretrained/unet_aponeurosis.msgpack
Time:     5,488 s (91 min) for 4800 steps of 8 frames on the 2-core CPU while other jobs kept
          its load average at 6-10.
Reaches:  on the 64 held-out DL_Track images, mean Dice 0.809 (median 0.869), median thickness
          error 0.71 px (docs/segmentation.md, experiments/segmentation_evaluate.py); the
          architecture stage's thickness against the TimTrack observers improves far more
          (docs/architecture_measurement.md).
Why:      the observers of the TimTrack labels measure thickness at the image's edge, where
          a faint or tilted deep aponeurosis decides the number; rotations of up to
          ±12 working pixels' degrees (about ±5° in a typical frame, whose columns are
          squeezed more than its rows) show the network aponeuroses at more slopes.
"""

from configs import segmentation


def get_config(mode: str = ""):
    config = segmentation.get_config(mode)
    config.augment.max_rotation_deg = 12.0
    if not mode:
        config.train.num_steps = 4800
    return config
