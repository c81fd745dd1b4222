"""The architecture stage: frames → image region → aponeuroses → fascicle angle → architecture.

Each frame is measured on its own (no state carried between frames, so nothing can drift):

1. **Region**: the B-mode image inside the frame (`region.py`, or a calibration crop).
2. **Aponeuroses**: the shipped U-Net's mask of the region (`segmentation.network`); bands
   touching the top of the image (the skin under the probe) are dropped, and
   `segmentation.curves.fit_aponeuroses` fits the superficial and deep aponeurosis curves.
   Their angles are those of least-squares lines through each band's centre rows, wherever
   the band shows.
3. **Fascicles**: the region is resized so that its height is `config.working_height`
   pixels (one scale for both axes, so angles are kept); the dominant direction of bright
   lines between the aponeuroses, clear of their own thickness by a margin, is the
   fascicle angle (`orientation.py`). Directions within `config.exclude_aponeurosis_deg`
   of either aponeurosis are not fascicles.
4. **Architecture** in TimTrack's definitions (`geometry.py`): angles in the canonical
   (fascicles rising to the right) orientation, pennation alpha − beta, thickness the
   vertical distance between the aponeuroses' inner edges where TimTrack measures it
   (`config.thickness_at`), fascicle length thickness / sin(pennation).

A frame where any step fails is `found=False` with the reason; nothing is guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np
from scipy import ndimage

from muscle_jax.architecture import aponeurosis_network, geometry, orientation
from muscle_jax.architecture.region import find_image_region
from muscle_jax.data.readers.frames import Crop, resize
from muscle_jax.segmentation.curves import AponeurosisFit, default_roi_config, fit_aponeuroses
from muscle_jax.segmentation.network import SHIPPED_CHECKPOINT

THICKNESS_LOCATIONS = ("left_edge", "timtrack", "centre", "mean")


def default_config() -> ml_collections.ConfigDict:
    """The stage's settings (the record of how architecture was measured)."""
    config = ml_collections.ConfigDict()
    config.checkpoint = ""  # segmentation checkpoint; "" = the shipped U-Net
    config.threshold = 0.5  # on the U-Net's aponeurosis probability
    config.roi = default_roi_config()  # curve degree and plausibility bounds of the aponeuroses
    config.roi.min_deep_mask_share = 0.7  # the deep aponeurosis holds nearly as much mask as the strongest deep band
    config.roi.min_gap_fraction = 0.08  # closer bands are layers of the superficial aponeurosis
    config.skin_fraction = 0.05  # mask components centred in this top share of the region are skin
    config.working_height = 256  # the region is measured at most this many pixels high (one scale for both axes)
    config.ridge_sigmas = (1.0,)  # line scales at the working resolution, pixels
    config.angle_range_deg = (-60.0, 60.0)  # fascicle directions searched, in the image as it is
    config.exclude_aponeurosis_deg = 4.0  # directions this close to an aponeurosis' are not fascicles
    config.margin_fraction = 0.1  # fascicle band clear of each aponeurosis' inner edge, share of thickness
    config.min_band_rows = 8  # at the working resolution: a thinner band between margins is not found
    # Peak line evidence over chance, relative to the median angle's; below: no fascicle direction.
    # Flat evidence is 1; a field of pure noise peaks at 1.2-1.4 and faint fascicles at 45° (the
    # GasFasTrack clips at maximal effort) at 1.3-1.5, so only evidence with no peak at all is refused.
    config.min_sharpness = 1.2
    # Where thickness is measured (THICKNESS_LOCATIONS): "left_edge", the left edge of the image
    # in the canonical orientation, where the observers of the TimTrack labels measured it;
    # "timtrack", where a fascicle centred on the image meets the deep aponeurosis (TimTrack's
    # own algorithm); "centre", the middle column; "mean", the mean over the columns both cover.
    config.thickness_at = "left_edge"
    # Inner edge of each aponeurosis: "half_max", where its brightness falls half way to the
    # muscle's (a property of the image); "mask", where the U-Net's mask ends.
    config.inner_edge = "half_max"
    # Thickness reads the inner edges over this share of the columns both aponeuroses cover, those
    # nearest its column (an aponeurosis thickens and thins along its length, so an edge read over
    # all of it can sit rows away from the edge where thickness is measured); 1: over all of them.
    config.inner_edge_share = 0.25
    config.batch_size = 16
    return config


@dataclasses.dataclass(frozen=True)
class FrameArchitecture:
    """One frame's architecture in TimTrack's definitions (NaN where not found), in the
    frame's own pixels, and the geometry behind it for overlays."""

    found: bool
    reason: str
    superficial_aponeurosis_angle_deg: float = float("nan")
    deep_aponeurosis_angle_deg: float = float("nan")
    fascicle_angle_deg: float = float("nan")
    pennation_deg: float = float("nan")
    thickness_px: float = float("nan")
    fascicle_length_px: float = float("nan")
    mirrored: bool = False  # angles are those of the mirrored image (fascicles fell to the right)
    region: Crop | None = None
    superficial_coeffs: np.ndarray | None = None  # row = polyval(coeffs, column), frame pixels, centre line
    deep_coeffs: np.ndarray | None = None
    column_range: tuple[float, float] | None = None  # columns both aponeuroses cover, frame pixels
    inner_offsets_px: tuple[float, float] = (0.0, 0.0)  # centre line → inner edge, superficial and deep
    thickness_column: float = float("nan")  # frame column where thickness was measured
    fascicle_angle_image_deg: float = float("nan")  # fascicle angle in the image as it is
    sharpness: float = float("nan")  # line evidence of the fascicle direction over the median


def _not_found(reason: str, region: Crop | None = None, **fields) -> FrameArchitecture:
    return FrameArchitecture(found=False, reason=reason, region=region, **fields)


def drop_skin_HxW(mask_HxW: np.ndarray, skin_fraction: float) -> np.ndarray:
    """The mask without components whose mean row lies in the top `skin_fraction` of the
    image: the bright skin line under the probe, which is not an aponeurosis."""
    labels, count = ndimage.label(mask_HxW, structure=np.ones((3, 3), bool))
    if count == 0:
        return mask_HxW
    rows, columns = np.nonzero(labels)
    component = labels[rows, columns]
    mean_rows = np.bincount(component, weights=rows, minlength=count + 1)[1:] / np.bincount(component, minlength=count + 1)[1:]
    skin = np.nonzero(mean_rows < skin_fraction * mask_HxW.shape[0])[0] + 1
    return mask_HxW & ~np.isin(labels, skin) if len(skin) else mask_HxW


def _sample_columns(coeffs: np.ndarray, column_range: tuple[float, float], width: int) -> tuple[np.ndarray, np.ndarray]:
    """32 columns spread over `column_range` (inside the image) and the curve's row at each, as ints."""
    columns = np.linspace(column_range[0], column_range[1], 32).round().astype(int)
    columns = columns[(columns >= 0) & (columns < width)]
    return columns, np.polyval(coeffs, columns).round().astype(int)


def inner_offset_px(mask_HxW: np.ndarray, coeffs: np.ndarray, column_range: tuple[float, float], deep: bool) -> float:
    """Median distance (rows) from a fitted centre line to the band's inner (muscle-side) edge."""
    height = mask_HxW.shape[0]
    columns, centres = _sample_columns(coeffs, column_range, mask_HxW.shape[1])
    reach = max(2, int(0.15 * height))
    rows_CxK = centres[:, None] + (-1 if deep else 1) * np.arange(reach + 1)[None, :]
    inside = (rows_CxK >= 0) & (rows_CxK < height)
    on_mask_CxK = inside & mask_HxW[np.clip(rows_CxK, 0, height - 1), columns[:, None]]
    # Rows of the band from the centre inwards, up to the first row off it.
    run = np.cumprod(on_mask_CxK, axis=1).sum(axis=1)
    run = run[on_mask_CxK[:, 0]]
    return float(np.median(run - 1)) if len(run) else 0.0


def half_maximum_offset_px(image_HxW: np.ndarray, coeffs: np.ndarray, column_range: tuple[float, float],
                           deep: bool, band_offset: float, muscle_level: float) -> float:
    """Median distance (rows) from a fitted centre line to where the aponeurosis' brightness,
    going into the muscle, falls half way from its peak to the muscle's median level."""
    height = image_HxW.shape[0]
    columns, centres = _sample_columns(coeffs, column_range, image_HxW.shape[1])
    search = int(np.ceil(band_offset)) + 2
    # Profiles across the aponeurosis, ordered from outside the muscle to inside it.
    direction = -1 if deep else 1
    rows_CxL = centres[:, None] + direction * np.arange(-4 * search, 4 * search + 1)[None, :]
    whole = np.all((rows_CxL >= 0) & (rows_CxL < height), axis=1)
    if not whole.any():
        return band_offset
    rows_CxL, columns = rows_CxL[whole], columns[whole]
    profiles = ndimage.gaussian_filter1d(image_HxW[rows_CxL, columns[:, None]].astype(np.float32), 1.0, axis=1)
    peaks = np.argmax(profiles[:, 3 * search : 5 * search + 1], axis=1) + 3 * search
    peak_values = profiles[np.arange(len(peaks)), peaks]
    halves = 0.5 * (peak_values + muscle_level)
    positions = np.arange(profiles.shape[1])[None, :]
    below = (profiles <= halves[:, None]) & (positions > peaks[:, None])
    crossing = np.argmax(below, axis=1)  # first position past the peak at or below half
    valid = below.any(axis=1) & (peak_values > muscle_level)
    if not valid.any():
        return band_offset
    index = np.arange(len(peaks))[valid]
    after, before = profiles[index, crossing[valid]], profiles[index, crossing[valid] - 1]
    fraction = (before - halves[valid]) / np.maximum(before - after, 1e-6)  # sub-pixel crossing
    edges = crossing[valid] - 1 + fraction - 4 * search  # from the centre, positive into the muscle
    return float(np.median(edges))


def inner_offsets(image_HxW: np.ndarray, mask_HxW: np.ndarray, fit: AponeurosisFit,
                  column_range: tuple[float, float], inner_edge: str) -> tuple[float, float]:
    """Distances (rows) from the superficial and deep centre lines to their inner edges."""
    superficial = inner_offset_px(mask_HxW, fit.superficial_coeffs, column_range, deep=False)
    deep = inner_offset_px(mask_HxW, fit.deep_coeffs, column_range, deep=True)
    if inner_edge == "mask":
        return superficial, deep
    if inner_edge != "half_max":
        raise ValueError(f"config.inner_edge must be 'half_max' or 'mask', got {inner_edge!r}")
    # The muscle's level: the median grey between the aponeuroses, away from both.
    columns = np.linspace(column_range[0], column_range[1], 32)
    rows_KxC = np.linspace(np.polyval(fit.superficial_coeffs, columns), np.polyval(fit.deep_coeffs, columns), 12)[3:-3]
    inside = (rows_KxC >= 0) & (rows_KxC < image_HxW.shape[0])
    column_index = np.broadcast_to(np.clip(columns.round().astype(int), 0, image_HxW.shape[1] - 1), rows_KxC.shape)
    muscle_level = float(np.median(image_HxW[rows_KxC[inside].astype(int), column_index[inside]])) if inside.any() else 0.0
    return (half_maximum_offset_px(image_HxW, fit.superficial_coeffs, column_range, False, superficial, muscle_level),
            half_maximum_offset_px(image_HxW, fit.deep_coeffs, column_range, True, deep, muscle_level))


def columns_near(column_range: tuple[float, float], column: float, share: float) -> tuple[float, float]:
    """The `share` of `column_range` nearest `column`: its end stretch when `column` lies beyond
    it, else a stretch centred on `column` (moved inside the range)."""
    low, high = column_range
    span = share * (high - low)
    start = np.clip(column - span / 2, low, high - span)
    return float(start), float(start + span)


def band_line(mask_HxW: np.ndarray, coeffs: np.ndarray, column_range, reach: float) -> np.ndarray:
    """Least-squares line through the centre rows of the mask near a curve, over every column
    where the band shows (not only those both aponeuroses cover)."""
    height, width = mask_HxW.shape
    columns = np.arange(width)
    centres = geometry.row_on_curve(coeffs, column_range, columns.astype(np.float64))
    offsets = np.arange(-int(np.ceil(reach)), int(np.ceil(reach)) + 1)
    rows = np.round(centres)[:, None].astype(int) + offsets[None, :]
    inside = (rows >= 0) & (rows < height)
    hits = inside & mask_HxW[np.clip(rows, 0, height - 1), columns[:, None]]
    counts = hits.sum(axis=1)
    keep = counts >= 2
    if keep.sum() < 8:
        return geometry.line_through_curve(coeffs, column_range)
    centre_rows = (np.where(hits, rows, 0).sum(axis=1)[keep]) / counts[keep]
    return np.polyfit(columns[keep].astype(np.float64), centre_rows, 1)


def usable_pixels_HxW(image_HxW: np.ndarray, margin: int) -> np.ndarray:
    """Pixels away from black outside-the-scan areas (the corners of steered or sector images),
    whose edges would otherwise read as lines. Such an area is black and reaches the region's
    border; dark muscle inside the image does not count."""
    dark = ndimage.maximum_filter(image_HxW, size=5) <= 3
    if not dark.any():
        return np.ones_like(dark)
    labels, count = ndimage.label(dark)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0])
    if not outside.any():
        return np.ones_like(dark)
    return ndimage.maximum_filter(outside.astype(np.uint8), size=2 * max(1, margin) + 1) == 0


def fascicle_band_HxW(
    shape_hw: tuple[int, int], superficial: np.ndarray, deep: np.ndarray, column_range: tuple[float, float],
    superficial_clearance: float, deep_clearance: float,
) -> np.ndarray:
    """Pixels between the two curves (working coordinates), each curve pushed inwards by its
    clearance, across every column: beyond `column_range`, where an aponeurosis was not seen,
    each continues along its tangent (the muscle does not stop where its boundary fades)."""
    height, width = shape_hw
    rows = np.arange(height)[:, None]
    columns = np.arange(width, dtype=np.float64)
    top = geometry.row_on_curve(superficial, column_range, columns) + superficial_clearance
    bottom = geometry.row_on_curve(deep, column_range, columns) - deep_clearance
    return (rows > top[None, :]) & (rows < bottom[None, :])


def _scaled_coeffs(coeffs: np.ndarray, row_scale: float, column_scale: float) -> np.ndarray:
    """Coefficients of row = polyval(c, column) after rows ×row_scale and columns ×column_scale."""
    degree = len(coeffs) - 1
    powers = np.array([column_scale ** -(degree - i) for i in range(degree + 1)])
    return coeffs * powers * row_scale


def _shifted_coeffs(coeffs: np.ndarray, row_shift: float, column_shift: float) -> np.ndarray:
    """Coefficients of the same curve in coordinates shifted by (row_shift, column_shift):
    new_row = old_row + row_shift at new_column = old_column + column_shift."""
    shifted = np.polyval(np.poly1d(coeffs), np.poly1d([1.0, -column_shift])).coeffs
    shifted = np.concatenate([np.zeros(len(coeffs) - len(shifted)), shifted])
    shifted[-1] += row_shift
    return shifted


def working_hw(region_hw: tuple[int, int], working_height: int) -> tuple[int, int]:
    """The region's size at the working resolution: at most `working_height` rows, one scale for both axes."""
    height, width = region_hw
    scale = min(1.0, working_height / height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def measure_region(
    work_HxW: np.ndarray, probabilities_HxW: np.ndarray, region: Crop, config: ml_collections.ConfigDict
) -> FrameArchitecture:
    """Architecture of one region from its picture and the U-Net's probabilities, both at the
    working resolution (`working_hw`); the result is in the whole frame's pixels."""
    row_scale, column_scale = work_HxW.shape[0] / region.h, work_HxW.shape[1] / region.w
    aspect = row_scale / column_scale  # 1 up to rounding; angles are converted exactly all the same
    to_image = lambda a: float(geometry.angle_deg(geometry.slope_rows_per_column(a) / aspect))  # noqa: E731
    to_work = lambda a: float(geometry.angle_deg(geometry.slope_rows_per_column(a) * aspect))  # noqa: E731
    mask = drop_skin_HxW(probabilities_HxW >= config.threshold, config.skin_fraction)
    fit: AponeurosisFit = fit_aponeuroses(mask, config.roi)
    if not fit.found:
        return _not_found(fit.reason, region)
    column_range = (float(fit.column_range[0]), float(fit.column_range[1]))
    superficial_offset, deep_offset = inner_offsets(work_HxW, mask, fit, column_range, config.inner_edge)
    # Each aponeurosis' angle from all of it that shows, as an observer draws it.
    superficial_line = band_line(mask, fit.superficial_coeffs, column_range, superficial_offset + 3)
    deep_line = band_line(mask, fit.deep_coeffs, column_range, deep_offset + 3)
    beta_image = to_image(float(geometry.angle_deg(superficial_line[0])))
    gamma_image = to_image(float(geometry.angle_deg(deep_line[0])))

    # Fascicles, between the aponeuroses' inner edges and clear of them by a margin.
    sigma = max(config.ridge_sigmas)
    clearance = config.margin_fraction * (fit.thickness_px - superficial_offset - deep_offset)
    band = fascicle_band_HxW(work_HxW.shape, fit.superficial_coeffs, fit.deep_coeffs, column_range,
                             superficial_offset + clearance + 2 * sigma, deep_offset + clearance + 2 * sigma)
    band &= usable_pixels_HxW(work_HxW, int(round(3 * sigma)))
    band[:, : int(3 * sigma)] = band[:, work_HxW.shape[1] - int(3 * sigma) :] = False
    if band.any(axis=1).sum() < config.min_band_rows:
        return _not_found("too little muscle between the aponeuroses to read fascicles from", region)
    ridges = orientation.ridge_strength_HxW(work_HxW, tuple(config.ridge_sigmas))
    excluded = tuple((to_work(a), config.exclude_aponeurosis_deg) for a in (beta_image, gamma_image))
    alpha_work, sharpness = orientation.dominant_line_angle(ridges, band, tuple(config.angle_range_deg), excluded)
    if not np.isfinite(alpha_work) or sharpness < config.min_sharpness:
        return _not_found(f"no dominant fascicle direction between the aponeuroses (evidence {sharpness:.2f}× "
                          f"the median, needs {config.min_sharpness})", region)
    alpha_image = to_image(alpha_work)

    alpha, beta, gamma, mirrored = geometry.canonical_orientation(alpha_image, beta_image, gamma_image)
    width = work_HxW.shape[1]
    if config.thickness_at == "timtrack":
        column = geometry.fascicle_centred_column(superficial_line, deep_line, alpha_work, (width - 1) / 2)
    elif config.thickness_at == "centre":
        column = (width - 1) / 2
    elif config.thickness_at == "left_edge":
        column = float(width - 1) if mirrored else 0.0
    elif config.thickness_at == "mean":
        column = float("nan")
    else:
        raise ValueError(f"config.thickness_at must be one of {THICKNESS_LOCATIONS}, got {config.thickness_at!r}")
    if np.isfinite(column):
        # The inner edges near the thickness column (config.inner_edge_share), not over all the covered columns.
        near = columns_near(column_range, column, config.inner_edge_share)
        superficial_offset, deep_offset = inner_offsets(work_HxW, mask, fit, near, config.inner_edge)
        centre_distance = geometry.row_on_curve(fit.deep_coeffs, column_range, column) - geometry.row_on_curve(
            fit.superficial_coeffs, column_range, column)
    else:
        centre_distance = fit.thickness_px
    thickness = (centre_distance - superficial_offset - deep_offset) / row_scale
    if thickness <= 0:
        return _not_found(f"the aponeuroses meet at column {column / column_scale:.0f} (thickness {thickness:.0f} px)",
                          region)
    to_frame = lambda c: _shifted_coeffs(_scaled_coeffs(c, 1 / row_scale, 1 / column_scale), region.y, region.x)  # noqa: E731
    return FrameArchitecture(
        found=True,
        reason="",
        superficial_aponeurosis_angle_deg=beta,
        deep_aponeurosis_angle_deg=gamma,
        fascicle_angle_deg=alpha,
        pennation_deg=geometry.pennation_deg(alpha, beta),
        thickness_px=thickness,
        fascicle_length_px=geometry.fascicle_length(thickness, alpha, beta),
        mirrored=mirrored,
        region=region,
        superficial_coeffs=to_frame(fit.superficial_coeffs),
        deep_coeffs=to_frame(fit.deep_coeffs),
        column_range=(column_range[0] / column_scale + region.x, column_range[1] / column_scale + region.x),
        inner_offsets_px=(superficial_offset / row_scale, deep_offset / row_scale),
        thickness_column=column / column_scale + region.x if np.isfinite(column) else float("nan"),
        fascicle_angle_image_deg=alpha_image,
        sharpness=sharpness,
    )


def blank_reason(image_HxW: np.ndarray) -> str:
    """Why a frame cannot hold an image ('' when it can): no contrast at all."""
    sample = image_HxW[::4, ::4]
    spread = float(np.percentile(sample, 99) - np.percentile(sample, 1))
    return f"blank frame (grey levels within {spread:.0f} of each other)" if spread < 8 else ""


def measure_frames(
    frames_NxHxW: np.ndarray | Sequence[np.ndarray],
    regions: Sequence[Crop | None] | None = None,
    config: ml_collections.ConfigDict | None = None,
) -> list[FrameArchitecture]:
    """Architecture of each uint8 grey frame (frames may differ in size).

    `regions[i]` is frame i's image region when known (a calibration, a clip's region);
    None, or no `regions`, finds it from the frame itself.
    """
    config = config or default_config()
    frames = list(frames_NxHxW)
    if regions is None:
        regions = [None] * len(frames)
    if len(regions) != len(frames):
        raise ValueError(f"{len(regions)} regions for {len(frames)} frames")
    checkpoint = str(Path(config.checkpoint) if config.checkpoint else SHIPPED_CHECKPOINT)
    results: list[FrameArchitecture | None] = [None] * len(frames)
    pending: list[tuple[int, np.ndarray, Crop]] = []
    for i, (frame, region) in enumerate(zip(frames, regions, strict=True)):
        if frame.ndim != 2 or frame.dtype != np.uint8:
            raise ValueError(f"frame {i}: expected uint8 H×W grey, got {frame.dtype} of shape {frame.shape}")
        reason = blank_reason(frame)
        if reason:
            results[i] = _not_found(reason)
            continue
        region = region or find_image_region(frame)
        if region is None:
            results[i] = _not_found("no image region: nothing in the frame has the texture of a B-mode image")
            continue
        pending.append((i, region.apply(frame, f"frame {i}"), region))
    sizes = [working_hw(crop.shape, config.working_height) for _, crop, _ in pending]
    probabilities = aponeurosis_network.probabilities([crop for _, crop, _ in pending], checkpoint, config.batch_size, sizes)
    for (i, crop, region), hw, probabilities_HxW in zip(pending, sizes, probabilities, strict=True):
        results[i] = measure_region(resize(crop, hw).astype(np.float32), probabilities_HxW, region, config)
    return results  # type: ignore[return-value]
