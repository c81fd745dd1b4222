"""Frames → aponeurosis masks, fitted curves, thickness and ROI crops (`segment_frames`)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from muscle_jax.data.roi import resample_between_curves
from muscle_jax.models.unet import UNet
from muscle_jax.segmentation.curves import AponeurosisFit, default_roi_config, fit_aponeuroses
from muscle_jax.segmentation.network import SHIPPED_CHECKPOINT, load_checkpoint, predict_probabilities_NxHxW


@dataclasses.dataclass(frozen=True)
class SegmentationResult:
    """Per-frame outputs of `segment_frames`; N frames of H×W, ROI h×w, curve degree D − 1."""

    masks_NxHxW: np.ndarray  # uint8 0/255 at the input size
    rois_NxhxW: np.ndarray  # uint8 (zeros where not found)
    found_N: np.ndarray  # bool
    reasons: list[str]  # '' where found
    thickness_px_N: np.ndarray  # float32, NaN where not found
    superficial_coeffs_NxD: np.ndarray  # float32, row = np.polyval(coeffs, column); NaN where not found
    deep_coeffs_NxD: np.ndarray
    column_range_Nx2: np.ndarray  # float32 first/last column of the ROI; NaN where not found


@functools.lru_cache(maxsize=4)
def cached_model(checkpoint: str) -> tuple[UNet, Any, tuple[int, int], dict]:
    """`load_checkpoint` once per path, parameters on the default device."""
    model, params, input_hw, meta = load_checkpoint(checkpoint)
    return model, jax.device_put(params), input_hw, meta


def roi_from_fit(frame_HxW: np.ndarray, fit: AponeurosisFit, roi_hw: tuple[int, int]) -> np.ndarray:
    """The uint8 ROI between the fitted curves, or zeros when the fit was not found."""
    if not fit.found:
        return np.zeros(roi_hw, np.uint8)
    roi = resample_between_curves(
        frame_HxW, fit.superficial_coeffs, fit.deep_coeffs, tuple(float(c) for c in fit.column_range), roi_hw
    )
    return np.clip(np.rint(roi), 0, 255).astype(np.uint8)


def segment_frames(
    frames_NxHxW: np.ndarray,
    roi_hw: tuple[int, int],
    checkpoint: str | None = None,
    batch_size: int = 16,
    roi_config: ml_collections.ConfigDict | None = None,
) -> SegmentationResult:
    """Segments same-size uint8 grayscale frames and extracts each frame's ROI.

    `checkpoint` defaults to the shipped model (`SHIPPED_CHECKPOINT`); loaded models are
    cached per path. `roi_config` defaults to `curves.default_roi_config()`.
    """
    frames_NxHxW = np.asarray(frames_NxHxW)
    if frames_NxHxW.ndim != 3 or frames_NxHxW.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N×H×W, got {frames_NxHxW.dtype} of shape {frames_NxHxW.shape}")
    roi_config = roi_config or default_roi_config()
    model, params, input_hw, meta = cached_model(str(checkpoint or SHIPPED_CHECKPOINT))
    threshold = meta.get("metrics", {}).get("config", {}).get("eval", {}).get("threshold", 0.5)
    probabilities = predict_probabilities_NxHxW(model, params, input_hw, frames_NxHxW, batch_size)
    masks = probabilities >= threshold
    fits = [fit_aponeuroses(mask, roi_config) for mask in masks]
    return SegmentationResult(
        masks_NxHxW=masks.astype(np.uint8) * 255,
        rois_NxhxW=np.stack([roi_from_fit(f, fit, roi_hw) for f, fit in zip(frames_NxHxW, fits, strict=True)])
        if len(fits) else np.zeros((0, *roi_hw), np.uint8),
        found_N=np.array([fit.found for fit in fits], bool),
        reasons=[fit.reason for fit in fits],
        thickness_px_N=np.array([fit.thickness_px for fit in fits], np.float32),
        superficial_coeffs_NxD=np.array([fit.superficial_coeffs for fit in fits], np.float32).reshape(len(fits), -1),
        deep_coeffs_NxD=np.array([fit.deep_coeffs for fit in fits], np.float32).reshape(len(fits), -1),
        column_range_Nx2=np.array([fit.column_range for fit in fits], np.float32).reshape(len(fits), 2),
    )


def checkpoint_metrics(checkpoint: str | Path | None = None) -> dict:
    """The metrics a checkpoint stored when it was trained."""
    return cached_model(str(checkpoint or SHIPPED_CHECKPOINT))[3].get("metrics", {})
