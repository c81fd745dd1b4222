"""A picture of what the architecture stage measured on a frame, to check it by eye.

Yellow: the image region. Green and blue: the superficial and deep aponeurosis (centre
lines; dotted where continued beyond the columns the U-Net saw them in). Red: fascicles at
the measured angle, through the middle of the muscle. Cyan: the thickness, between the
aponeuroses' inner edges, where it was measured. The numbers sit in the top-left corner.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from muscle_jax.architecture import geometry
from muscle_jax.architecture.measure import FrameArchitecture

_COLOURS = {"region": (255, 220, 0), "superficial": (0, 220, 0), "deep": (40, 120, 255),
            "fascicle": (255, 40, 40), "thickness": (0, 230, 230), "text": (255, 255, 255)}


def _curve_points(coeffs: np.ndarray, column_range: tuple[float, float], low: float, high: float) -> tuple[list, list]:
    """(points inside the fitted range, points beyond it) of a curve between columns low and high."""
    columns = np.linspace(low, high, 96)
    rows = geometry.row_on_curve(coeffs, column_range, columns)
    inside = (columns >= column_range[0]) & (columns <= column_range[1])
    points = list(zip(columns.tolist(), rows.tolist(), strict=True))
    return [p for p, keep in zip(points, inside, strict=True) if keep], [p for p, keep in zip(points, inside, strict=True) if not keep]


def draw_overlay(frame_HxW: np.ndarray, result: FrameArchitecture) -> np.ndarray:
    """An RGB uint8 copy of the grey frame with the measurement drawn on it."""
    image = Image.fromarray(np.repeat(frame_HxW[..., None], 3, axis=-1))
    draw = ImageDraw.Draw(image)
    if result.region is not None:
        r = result.region
        draw.rectangle([r.x, r.y, r.x + r.w - 1, r.y + r.h - 1], outline=_COLOURS["region"])
    if result.found and result.superficial_coeffs is not None and result.region is not None:
        low, high = float(result.region.x), float(result.region.x + result.region.w - 1)
        for name, coeffs in (("superficial", result.superficial_coeffs), ("deep", result.deep_coeffs)):
            seen, beyond = _curve_points(coeffs, result.column_range, low, high)
            if len(seen) > 1:
                draw.line(seen, fill=_COLOURS[name], width=2)
            for point in beyond[::2]:
                draw.point(point, fill=_COLOURS[name])
        _draw_fascicles(draw, result, low, high)
        column = result.thickness_column
        top = geometry.row_on_curve(result.superficial_coeffs, result.column_range, column) + result.inner_offsets_px[0]
        bottom = geometry.row_on_curve(result.deep_coeffs, result.column_range, column) - result.inner_offsets_px[1]
        draw.line([(column, top), (column, bottom)], fill=_COLOURS["thickness"], width=3)
        text = (f"fascicle {result.fascicle_angle_deg:.1f} deg  pennation {result.pennation_deg:.1f} deg\n"
                f"thickness {result.thickness_px:.0f} px  length {result.fascicle_length_px:.0f} px"
                f"{'  (mirrored)' if result.mirrored else ''}")
    else:
        text = f"not found: {result.reason}"
    draw.multiline_text((6, 4), text, fill=_COLOURS["text"])
    return np.asarray(image)


def _draw_fascicles(draw: ImageDraw.ImageDraw, result: FrameArchitecture, low: float, high: float) -> None:
    """Three parallel fascicles at the measured angle, each from one aponeurosis to the other."""
    for fraction in (0.25, 0.5, 0.75):
        ends = geometry.fascicle_through(result.superficial_coeffs, result.deep_coeffs, result.column_range,
                                         result.fascicle_angle_image_deg, low + fraction * (high - low))
        if ends is not None:
            draw.line([tuple(point) for point in ends.tolist()], fill=_COLOURS["fascicle"], width=2)
