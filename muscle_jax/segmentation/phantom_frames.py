"""Phantom frames with their aponeurosis masks, as extra training data for the U-Net.

The phantom renders each frame with a label mask (1 superficial, 2 deep aponeurosis); its
aponeuroses are the same kind of bright, near-horizontal bands as in DL_Track's real images.
The frames come from participants drawn with another phantom seed than the regression
datasets', so a phantom held out of a regression fold is never in the U-Net's training set.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from muscle_jax.data import phantom
from muscle_jax.data.phantom.simulate import simulate_trial
from muscle_jax.segmentation.dl_track import resize_pair

# Added to the preset's seed: other simulated people than any regression dataset of the preset.
SEGMENTATION_SEED_OFFSET = 7_000


def phantom_training_frames(num_frames: int, input_hw: tuple[int, int], preset: str = "phantom_small"
                            ) -> tuple[np.ndarray, np.ndarray]:
    """`num_frames` (frames_NxHxW uint8, masks_NxHxW float32) at the working resolution, spread
    evenly over the preset's participants and over each one's combined (active + passive) trial."""
    if num_frames < 1:
        raise ValueError(f"data.phantom_frames must be >= 1 to add phantom frames, got {num_frames}")
    config = phantom.preset(preset, "data.phantom_preset")
    config = dataclasses.replace(config, seed=config.seed + SEGMENTATION_SEED_OFFSET)
    combined_trial = len(config.trial_durations_s()) - 1
    per_participant = np.diff(np.linspace(0, num_frames, config.num_participants + 1).round().astype(int))
    frames, masks = [], []
    for participant, count in enumerate(per_participant):
        if count == 0:
            continue
        trial = simulate_trial(config, participant, combined_trial)
        chosen = np.linspace(0, len(trial["frame"]) - 1, count).round().astype(int)
        for t in chosen:
            label_HxW = trial["mask"][t, ..., 0]
            frame, mask = resize_pair(trial["frame_image"][t, ..., 0], (label_HxW == 1) | (label_HxW == 2), input_hw)
            frames.append(frame)
            masks.append(mask)
    return np.stack(frames), np.stack(masks)
