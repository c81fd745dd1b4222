"""Segmentation stage: raw B-mode frames → aponeurosis masks → fitted curves → ROI and thickness.

Public API (used by the recordings readers and the dataset builder):

    segment_frames(frames_NxHxW: uint8, roi_hw, checkpoint=None, batch_size=16, roi_config=None)
        -> SegmentationResult with numpy fields
           masks_NxHxW (uint8 0/255, input size), rois_NxhxW (uint8, roi_hw; zeros where not
           found), found_N (bool), reasons (list[str], '' where found), thickness_px_N
           (float32, NaN where not found), superficial_coeffs_NxD / deep_coeffs_NxD (float32,
           `row = np.polyval(coeffs, column)` in input-frame pixels, curves through the middle
           of each aponeurosis; NaN where not found), column_range_Nx2 (float32).
    The shipped checkpoint (`pretrained/unet_aponeurosis.msgpack`) is used by default and
    loaded once per process per path.

    fit_aponeuroses(mask_HxW, roi_config) -> AponeurosisFit   (one mask → curves, no network)
    default_roi_config()                                      (degree and plausibility bounds)

Modules: `network` (U-Net input convention, checkpoint file), `dl_track` (the real training
pairs and their fixed split), `augment`, `train` (`python -m muscle_jax.segmentation.train`),
`evaluate` (Dice/IoU at input resolution), `curves` (mask → curves), `inference`. Frames are
read by `muscle_jax.data.readers`. The CLI is `python -m muscle_jax.segment`.
"""

from muscle_jax.segmentation.curves import AponeurosisFit, default_roi_config, fit_aponeuroses
from muscle_jax.segmentation.inference import SegmentationResult, segment_frames
from muscle_jax.segmentation.network import SHIPPED_CHECKPOINT

__all__ = [
    "SHIPPED_CHECKPOINT",
    "AponeurosisFit",
    "SegmentationResult",
    "default_roi_config",
    "fit_aponeuroses",
    "segment_frames",
]
