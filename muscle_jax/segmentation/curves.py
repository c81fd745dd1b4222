"""From an aponeurosis mask to two fitted curves, their column range and the muscle thickness.

The mask holds both aponeuroses in one class. Connected components that span enough columns
are grouped into bands (a fragment joins a band when it lies on that band's line and covers
mostly other columns), the shallowest two bands spanning enough of the width become the
superficial and deep aponeurosis (deeper bands bound deeper muscles; with
`min_deep_mask_share`, the deep one is the shallowest band below the superficial that holds
nearly as many mask pixels as the strongest there; with `min_gap_fraction`, bands just under
the superficial one are its layers), and each is fitted with a polynomial `row = polyval(coeffs, column)`
through its per-column centre row. The curves therefore run along the middle of each
aponeurosis, and thickness is the mean centre-to-centre distance over the columns both
cover. Every way this can fail sets `found=False` with a reason instead of returning curves.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
from scipy import ndimage

from muscle_jax.data.roi import mean_thickness

# A component narrower than this share of the width is speckle, not an aponeurosis piece.
_MIN_FRAGMENT_FRACTION = 0.03
# A fragment joins a band when its median distance from the band's line is below this share
# of the height and at most this share of its columns are already covered by the band.
_JOIN_DISTANCE_FRACTION = 0.03
_JOIN_MAX_SHARED_COLUMNS = 0.2
# Wider masks are analysed on every k-th column only (k = width // this): near-horizontal
# bands stay connected, and the fit costs the same for any frame width.
_MAX_COLUMNS = 256


def default_roi_config() -> ml_collections.ConfigDict:
    """Curve degree and the bounds beyond which a frame's aponeuroses count as not found."""
    roi = ml_collections.ConfigDict()
    roi.degree = 2  # polynomial degree of each fitted aponeurosis
    roi.min_mask_fraction = 0.002  # below this share of mask pixels: nothing found
    roi.max_mask_fraction = 0.25  # above it the mask is not two thin bands
    roi.max_band_thickness_fraction = 0.15  # mean vertical extent of one band, share of the height
    roi.min_band_share = 0.6  # share of mask pixels the wide bands must hold (else clutter)
    roi.min_span_fraction = 0.25  # each aponeurosis must span this share of the width
    roi.min_overlap_fraction = 0.25  # columns both aponeuroses cover, share of the width
    roi.min_thickness_fraction = 0.05  # thickness bounds, share of the frame height
    roi.max_thickness_fraction = 0.9
    roi.max_residual_fraction = 0.03  # RMS fit residual bound, share of the frame height
    # 0: the deep aponeurosis is the second-shallowest band. s > 0: the shallowest band below the
    # superficial one holding ≥ s × the mask pixels of the strongest of those bands. An aponeurosis
    # is a thick sheet seen along its length; intramuscular streaks are thin, short or broken, and
    # a streak can span nearly as many columns as the aponeurosis, but not hold as much mask.
    roi.min_deep_mask_share = 0.0
    # 0: off. g > 0: bands less than g × the height below the shallowest are layers of the
    # superficial aponeurosis (the deepest of them is taken), the deep one lies farther down.
    roi.min_gap_fraction = 0.0
    return roi


@dataclasses.dataclass(frozen=True)
class AponeurosisFit:
    """Two fitted aponeuroses of one frame (coefficients NaN and reason set when not found)."""

    found: bool
    reason: str
    superficial_coeffs: np.ndarray  # (degree + 1,), highest degree first
    deep_coeffs: np.ndarray
    column_range: np.ndarray  # (2,) first and last column both curves cover
    thickness_px: float

    @classmethod
    def not_found(cls, reason: str, degree: int) -> AponeurosisFit:
        nan_coeffs = np.full(degree + 1, np.nan, np.float32)
        return cls(False, reason, nan_coeffs, nan_coeffs.copy(), np.full(2, np.nan, np.float32), float("nan"))


@dataclasses.dataclass
class _Band:
    columns: np.ndarray  # per-column samples: column index and centre row
    rows: np.ndarray
    pixels: int  # mask pixels in the band

    def line(self) -> np.ndarray:
        return np.polyfit(self.columns, self.rows, 1) if np.ptp(self.columns) > 0 else np.array([0.0, self.rows.mean()])

    def column_set(self) -> set[int]:
        return set(self.columns.astype(int).tolist())


def _component_bands(mask_HxW: np.ndarray, min_columns: int) -> list[_Band]:
    """One band per connected component covering at least `min_columns` columns, widest first."""
    labels_HxW, count = ndimage.label(mask_HxW, structure=np.ones((3, 3), bool))
    if count == 0:
        return []
    rows, cols = np.nonzero(labels_HxW)
    labels = labels_HxW[rows, cols]
    width = mask_HxW.shape[1]
    # Per (component, column): pixel count and row sum → centre row.
    keys = labels.astype(np.int64) * width + cols
    counts = np.bincount(keys, minlength=(count + 1) * width).reshape(count + 1, width)
    row_sums = np.bincount(keys, weights=rows, minlength=(count + 1) * width).reshape(count + 1, width)
    bands = []
    for label in range(1, count + 1):
        columns = np.nonzero(counts[label])[0]
        if len(columns) >= min_columns:
            bands.append(
                _Band(columns.astype(np.float64), row_sums[label, columns] / counts[label, columns],
                      int(counts[label].sum()))
            )
    return sorted(bands, key=lambda b: -len(b.columns))


def _group_fragments(fragments: list[_Band], height: int) -> list[_Band]:
    """Merges fragments lying on one line into one band (widest fragments seed the bands)."""
    bands: list[_Band] = []
    for fragment in fragments:
        for band in bands:
            distance = np.median(np.abs(np.polyval(band.line(), fragment.columns) - fragment.rows))
            shared = len(band.column_set() & fragment.column_set()) / len(fragment.columns)
            if distance <= _JOIN_DISTANCE_FRACTION * height and shared <= _JOIN_MAX_SHARED_COLUMNS:
                band.columns = np.concatenate([band.columns, fragment.columns])
                band.rows = np.concatenate([band.rows, fragment.rows])
                band.pixels += fragment.pixels
                break
        else:
            bands.append(_Band(fragment.columns.copy(), fragment.rows.copy(), fragment.pixels))
    return sorted(bands, key=lambda b: -len(b.column_set()))


def fit_aponeuroses(mask_HxW: np.ndarray, roi_config: ml_collections.ConfigDict) -> AponeurosisFit:
    """Superficial and deep aponeurosis curves of a boolean mask, or found=False with a reason.

    `roi_config` is `config.roi` of configs/segmentation.py (degree and plausibility bounds).
    """
    if mask_HxW.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask_HxW.shape}")
    height, full_width = mask_HxW.shape
    step = max(1, full_width // _MAX_COLUMNS)
    mask_HxW = mask_HxW[:, ::step].astype(bool)
    width = mask_HxW.shape[1]
    degree = roi_config.degree
    not_found = lambda reason: AponeurosisFit.not_found(reason, degree)  # noqa: E731
    mask_fraction = mask_HxW.mean()
    if mask_fraction < roi_config.min_mask_fraction:
        return not_found(f"too little aponeurosis in the mask ({100 * mask_fraction:.2f} % of pixels)")
    if mask_fraction > roi_config.max_mask_fraction:
        return not_found(f"the mask covers {100 * mask_fraction:.0f} % of the frame, not two thin bands")
    fragments = _component_bands(mask_HxW, max(2, int(_MIN_FRAGMENT_FRACTION * width)))
    bands = [
        b for b in _group_fragments(fragments, height) if len(b.column_set()) >= roi_config.min_span_fraction * width
    ]
    if len(bands) < 2:
        return not_found(f"{'only one aponeurosis' if bands else 'no aponeurosis'} spans "
                         f"≥ {100 * roi_config.min_span_fraction:.0f} % of the width")
    band_share = sum(b.pixels for b in bands) / mask_HxW.sum()
    if band_share < roi_config.min_band_share:
        return not_found(f"the aponeuroses hold only {100 * band_share:.0f} % of the mask (cluttered mask)")
    # Deeper bands belong to deeper muscles (e.g. soleus under gastrocnemius): the muscle of
    # interest lies between the shallowest two, or below the shallowest and the shallowest wide one.
    superficial, *below = sorted(bands, key=lambda b: np.median(b.rows))
    # With min_gap_fraction, bands just under the shallowest are layers of one superficial
    # aponeurosis (the deepest of them bounds the muscle), and the deep one lies farther down.
    min_gap = roi_config.get("min_gap_fraction", 0.0) * height
    while below and min_gap > 0 and np.median(below[0].rows) - np.median(superficial.rows) < min_gap:
        superficial, *below = below
    if not below:
        return not_found(f"no aponeurosis lies ≥ {100 * roi_config.get('min_gap_fraction', 0.0):.0f} % of the "
                         "height below the superficial one")
    min_deep_pixels = roi_config.get("min_deep_mask_share", 0.0) * max(b.pixels for b in below)
    deep = next(b for b in below if b.pixels >= min_deep_pixels)
    coeffs = []
    for name, band in (("superficial", superficial), ("deep", deep)):
        band_thickness = band.pixels / len(band.column_set())
        if band_thickness > roi_config.max_band_thickness_fraction * height:
            return not_found(f"{name} aponeurosis is {band_thickness:.0f} px thick, not a thin band")
        frame_columns = band.columns * step
        c = np.polyfit(frame_columns, band.rows, degree)
        residual = np.sqrt(np.mean((np.polyval(c, frame_columns) - band.rows) ** 2))
        if residual > roi_config.max_residual_fraction * height:
            return not_found(f"{name} aponeurosis is not a smooth curve (RMS residual {residual:.1f} px)")
        coeffs.append(c)
    first = step * max(superficial.columns.min(), deep.columns.min())
    last = step * min(superficial.columns.max(), deep.columns.max())
    if last - first + step < roi_config.min_overlap_fraction * full_width:
        return not_found(f"the aponeuroses share only {max(0, int(last - first + step))} columns")
    columns = np.linspace(first, last, 64)
    gap = np.polyval(coeffs[1], columns) - np.polyval(coeffs[0], columns)
    if gap.min() <= 0:
        return not_found("the fitted aponeuroses cross")
    thickness = mean_thickness(coeffs[0], coeffs[1], (first, last))
    if not roi_config.min_thickness_fraction * height <= thickness <= roi_config.max_thickness_fraction * height:
        return not_found(f"implausible muscle thickness {thickness:.0f} px for a frame {height} px high")
    return AponeurosisFit(
        True, "", coeffs[0].astype(np.float32), coeffs[1].astype(np.float32),
        np.array([first, last], np.float32), float(thickness),
    )
