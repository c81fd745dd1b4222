"""Resampling of the muscle between its two aponeuroses into a fixed-size ROI.

Shared by every source of frames: the phantom (true aponeurosis curves) and the
segmentation stage (curves fitted to predicted masks). A curve is a polynomial
`row = polyval(coeffs, column)` in the frame's pixel coordinates (coefficients
highest degree first, as `np.polyval` takes them).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resample_between_curves(
    image_HxW: np.ndarray,
    superficial_coeffs: np.ndarray,
    deep_coeffs: np.ndarray,
    column_range: tuple[float, float],
    roi_hw: tuple[int, int],
) -> np.ndarray:
    """Returns the band between two curves resampled to `roi_hw` (float32).

    ROI row i lies at fraction i / (h - 1) of the way from the superficial to the
    deep curve, so the aponeuroses themselves sit on the first and last rows; ROI
    column j lies at column_range[0] + j / (w - 1) * (column_range[1] - column_range[0]).
    Bilinear interpolation; points outside the frame read as 0.
    """
    if image_HxW.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale frame, got shape {image_HxW.shape}")
    roi_h, roi_w = roi_hw
    columns_W = np.linspace(column_range[0], column_range[1], roi_w)
    top_W = np.polyval(superficial_coeffs, columns_W)
    bottom_W = np.polyval(deep_coeffs, columns_W)
    fraction_H = np.linspace(0.0, 1.0, roi_h)
    rows_HxW = top_W[None, :] + fraction_H[:, None] * (bottom_W - top_W)[None, :]
    cols_HxW = np.broadcast_to(columns_W[None, :], rows_HxW.shape)
    return ndimage.map_coordinates(
        image_HxW.astype(np.float32), [rows_HxW, cols_HxW], order=1, mode="constant", cval=0.0
    )


def mean_thickness(
    superficial_coeffs: np.ndarray, deep_coeffs: np.ndarray, column_range: tuple[float, float], samples: int = 64
) -> float:
    """Mean vertical distance (pixels) between the two curves over `column_range`."""
    columns = np.linspace(column_range[0], column_range[1], samples)
    return float(np.mean(np.polyval(deep_coeffs, columns) - np.polyval(superficial_coeffs, columns)))
