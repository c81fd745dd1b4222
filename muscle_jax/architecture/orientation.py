"""The dominant orientation of bright lines (fascicles) inside a region of an image.

Two steps, both cheap on a CPU:

1. **Ridge strength**: the Hessian of the Gaussian-smoothed image at a few scales; a bright
   line has one strongly negative eigenvalue across it, so `max(0, -λ_min)·σ²` (scale
   normalised, maximum over scales) marks line pixels whatever their direction.
2. **Line evidence per angle** (a masked Radon transform): for each candidate angle the
   region's ridge strength is averaged along parallel lines at that angle; when the angle
   matches the fascicles, the averages swing between the lines that follow a fascicle and
   those between fascicles, so their variance peaks. The angle of largest variance,
   smoothed over nearby angles and refined by a parabola through the peak, is the
   fascicle angle.

Averaging along whole lines weighs long, straight, continuous echoes (what an observer
traces) over short speckle, and the variance is immune to the horizontal elongation of
speckle that biases averaged structure tensors towards 0°.

Angles follow TimTrack's rule: the angle of a line is −atan of its slope in image rows per
column, so a line rising to the right is positive.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ridge_strength_HxW(image_HxW: np.ndarray, sigmas: tuple[float, ...]) -> np.ndarray:
    """Scale-normalised strength of bright lines, the maximum over `sigmas` (pixels), float32."""
    image = image_HxW.astype(np.float32)
    strength = np.zeros_like(image)
    for sigma in sigmas:
        d_rr = ndimage.gaussian_filter(image, sigma, order=(2, 0))
        d_cc = ndimage.gaussian_filter(image, sigma, order=(0, 2))
        d_rc = ndimage.gaussian_filter(image, sigma, order=(1, 1))
        smallest = 0.5 * (d_rr + d_cc - np.sqrt((d_rr - d_cc) ** 2 + 4.0 * d_rc * d_rc))
        np.maximum(strength, -smallest * sigma * sigma, out=strength)
    return strength


def line_evidence(
    rows_N: np.ndarray, cols_N: np.ndarray, values_N: np.ndarray, angles_deg: np.ndarray, min_chord_share: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """For each angle, the variance across parallel lines (1 px apart) of the mean value
    along each line: a Radon transform of the samples (`values_N` at `rows_N`, `cols_N`,
    possibly fractional). Lines holding fewer than `min_chord_share` of the largest line's
    samples are left out (too short a chord through the region to average). Returns the
    evidence and what independent pixels would give by chance at each angle."""
    if len(values_N) == 0:
        return np.zeros(len(angles_deg)), np.ones(len(angles_deg))
    values = values_N.astype(np.float64) - float(np.mean(values_N))
    radians = np.radians(np.asarray(angles_deg, np.float32))
    # A line at TimTrack angle a runs along (cos a, −sin a) in (column, row); its offset is
    # the coordinate along the normal (sin a, cos a).
    offsets_AxN = np.outer(np.sin(radians), cols_N.astype(np.float32)) + np.outer(np.cos(radians), rows_N.astype(np.float32))
    offsets_AxN -= offsets_AxN.min(axis=1, keepdims=True)
    bins_AxN = offsets_AxN.astype(np.int32)
    num_bins = int(bins_AxN.max()) + 1
    keys = (bins_AxN + num_bins * np.arange(len(radians), dtype=np.int32)[:, None]).ravel()
    size = num_bins * len(radians)
    counts = np.bincount(keys, minlength=size).reshape(len(radians), num_bins).astype(np.float64)
    sums = np.bincount(keys, weights=np.broadcast_to(values, bins_AxN.shape).ravel(), minlength=size)
    sums = sums.reshape(len(radians), num_bins)
    long_enough = counts >= min_chord_share * counts.max(axis=1, keepdims=True)
    means = np.where(long_enough, sums / np.maximum(counts, 1.0), 0.0)
    weights = np.where(long_enough, counts, 0.0)
    evidence = (weights * means**2).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
    # Without lines in the field, a line's mean over n pixels varies as variance / n, so the
    # evidence expected by chance is variance · lines / pixels: larger where chords are short.
    chance = values.var() * long_enough.sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
    return evidence, chance


def _parabola_peak(angles_deg: np.ndarray, scores: np.ndarray) -> float:
    k = int(np.argmax(scores))
    if 0 < k < len(scores) - 1 and np.isfinite(scores[k - 1 : k + 2]).all():
        left, centre, right = scores[k - 1 : k + 2]
        curvature = left - 2.0 * centre + right
        if curvature < 0:
            return float(angles_deg[k] + 0.5 * (left - right) / curvature * (angles_deg[1] - angles_deg[0]))
    return float(angles_deg[k])


def _samples(field_HxW: np.ndarray, region_HxW: np.ndarray, column_pool: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of the region, each sample the mean of `column_pool` neighbouring
    columns of one row that all lie in the region. Pooling along rows only blurs a line at
    angle a by column_pool·tan(a) rows, little against a line's width for the angles of fascicles."""
    width = (field_HxW.shape[1] // column_pool) * column_pool
    shape = (field_HxW.shape[0], width // column_pool, column_pool)
    field = field_HxW[:, :width].reshape(shape).mean(axis=2)
    region = region_HxW[:, :width].reshape(shape).all(axis=2)
    rows, pooled_cols = np.nonzero(region)
    return rows, pooled_cols * column_pool + 0.5 * (column_pool - 1), field[region]


def dominant_line_angle(
    field_HxW: np.ndarray,
    region_HxW: np.ndarray,
    angle_range_deg: tuple[float, float],
    excluded_deg: tuple[tuple[float, float], ...] = (),
    step_deg: float = 2.0,
    smoothing_deg: float = 3.0,
    column_pool: int = 2,
) -> tuple[float, float]:
    """(angle in degrees, peak sharpness) of the lines in `field` inside `region`.

    Line evidence is computed every `step_deg` over `angle_range_deg` on samples pooled over
    `column_pool` columns, smoothed over angle by a Gaussian of `smoothing_deg` (a field of
    roughly parallel fascicles gives a comb of nearby peaks, one per set of fascicles that
    happen to line up; the smoothed peak is their common direction) and refined by a
    parabola through the peak. Angles within `half_width` of a `(centre, half_width)` pair in
    `excluded_deg` are never chosen (e.g. the aponeuroses' own direction, whose remnants and
    septa are not fascicles). Sharpness is the peak's evidence over chance, relative to the
    median angle's (1 = no preferred direction); the angle is NaN when the region is empty.
    """
    rows, cols, values = _samples(field_HxW, region_HxW, column_pool)
    if len(values) == 0:
        return float("nan"), 0.0
    low, high = angle_range_deg
    angles = np.arange(low, high + 1e-9, step_deg)
    raw, chance = line_evidence(rows, cols, values, angles)
    evidence = ndimage.gaussian_filter1d(raw, smoothing_deg / step_deg, mode="nearest")
    allowed = np.ones(len(angles), bool)
    for centre, half_width in excluded_deg:
        allowed &= np.abs(angles - centre) >= half_width
    if not allowed.any():
        return float("nan"), 0.0
    candidates = np.where(allowed, evidence, -np.inf)
    # Sharpness compares evidence over chance, so that short chords (steep angles) do not look sharp.
    over_chance = np.where(chance > 0, evidence / np.maximum(chance, 1e-30), 0.0)
    median = float(np.median(over_chance))
    best = int(np.argmax(candidates))
    sharpness = float(over_chance[best] / median) if median > 0 else 0.0
    return _parabola_peak(angles, candidates), sharpness
