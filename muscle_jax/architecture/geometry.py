"""TimTrack's definitions of muscle architecture, as pure functions of lines in an image.

Angles follow TimTrack's sign rule (van der Zee & Kuo 2022; ../shared/data/README.md): the
angle of a line is −atan of its slope in image rows per column, so a line rising to the
right is positive. `alpha` is the fascicle's angle to the image horizontal, `beta` the
superficial aponeurosis', `gamma` the deep aponeurosis'. Pennation is `alpha − beta` and
fascicle length `thickness / sin(alpha − beta)`.

TimTrack analyses images in which the fascicles rise to the right, and mirrors the others
left to right first (its `flip_image` option, used for dataset 4 of its validation, whose
labels are therefore those of the mirrored images). `canonical_orientation` does the same:
when the fascicles fall to the right of the superficial aponeurosis, all three angles are
reported for the mirrored image, so that pennation and fascicle length stay positive.
"""

from __future__ import annotations

import numpy as np


def angle_deg(slope_rows_per_column: float | np.ndarray) -> float | np.ndarray:
    """TimTrack's angle of a line with this slope (rows per column): −atan(slope), in degrees."""
    return -np.degrees(np.arctan(slope_rows_per_column))


def slope_rows_per_column(angle: float | np.ndarray) -> float | np.ndarray:
    """The inverse of `angle_deg`."""
    return -np.tan(np.radians(angle))


def line_through_curve(coeffs: np.ndarray, column_range: tuple[float, float], samples: int = 64) -> np.ndarray:
    """The least-squares line `row = polyval(line, column)` through a curve over a column range."""
    columns = np.linspace(column_range[0], column_range[1], samples)
    return np.polyfit(columns, np.polyval(coeffs, columns), 1)


def row_on_curve(coeffs: np.ndarray, column_range: tuple[float, float], columns: float | np.ndarray) -> float | np.ndarray:
    """The curve's rows at `columns`: the polynomial inside `column_range` (where it was
    fitted), its tangent line beyond (a polynomial extrapolated far from its data can turn anywhere)."""
    low, high = column_range
    columns = np.asarray(columns, np.float64)
    ends = np.clip(columns, low, high)
    rows = np.polyval(coeffs, ends) + np.polyval(np.polyder(coeffs), ends) * (columns - ends)
    return float(rows) if rows.ndim == 0 else rows


def fascicle_through(superficial_coeffs: np.ndarray, deep_coeffs: np.ndarray, column_range: tuple[float, float],
                     angle_image_deg: float, column: float) -> np.ndarray | None:
    """The fascicle at `angle_image_deg` through the middle of the muscle at `column`, spanning the
    rows between the two aponeuroses there: its two ends as [[x, y], [x, y]], or None when the
    angle is (nearly) horizontal."""
    slope = slope_rows_per_column(angle_image_deg)
    if not np.isfinite(slope) or abs(slope) < 1e-6:
        return None
    top, bottom = row_on_curve(superficial_coeffs, column_range, column), row_on_curve(deep_coeffs, column_range, column)
    half_width = 0.5 * (bottom - top) / abs(slope)
    offsets = np.array([-half_width, half_width])
    return np.stack([column + offsets, 0.5 * (top + bottom) + slope * offsets], axis=1)


def pennation_deg(alpha: float, beta: float) -> float:
    """The fascicle's angle to the superficial aponeurosis (TimTrack: alpha − beta)."""
    return alpha - beta


def fascicle_length(thickness: float, alpha: float, beta: float) -> float:
    """TimTrack's fascicle length, thickness / sin(alpha − beta), in the thickness' units (NaN
    when the pennation is not positive: the fascicle would never reach the other aponeurosis)."""
    pennation = np.radians(alpha - beta)
    return float(thickness / np.sin(pennation)) if pennation > 0 else float("nan")


def canonical_orientation(alpha: float, beta: float, gamma: float) -> tuple[float, float, float, bool]:
    """(alpha, beta, gamma, mirrored): the angles as TimTrack would report them, i.e. for the
    mirrored image when the fascicles fall to the right relative to the superficial aponeurosis."""
    if alpha - beta < 0:
        return -alpha, -beta, -gamma, True
    return alpha, beta, gamma, False


def fascicle_centred_column(
    superficial_line: np.ndarray, deep_line: np.ndarray, alpha_image: float, centre_column: float
) -> float:
    """Where TimTrack measures thickness: the column at which a fascicle (at angle
    `alpha_image`, in the image as it is) whose span between the two aponeurosis lines is
    centred on `centre_column` meets the deep aponeurosis. Lines are `row = polyval(line, column)`."""
    fascicle_slope = slope_rows_per_column(alpha_image)
    deep_slope, superficial_slope = deep_line[0], superficial_line[0]
    if np.isclose(deep_slope, fascicle_slope) or np.isclose(superficial_slope, fascicle_slope):
        return float(centre_column)
    # The fascicle row = fascicle_slope·c + b meets a line row = s·c + i at c = (b − i) / (s − fascicle_slope).
    # Centring both meeting columns on centre_column fixes b (linear in b, solved directly).
    inverse_deep = 1.0 / (deep_slope - fascicle_slope)
    inverse_superficial = 1.0 / (superficial_slope - fascicle_slope)
    intercept = (2.0 * centre_column + deep_line[1] * inverse_deep + superficial_line[1] * inverse_superficial) / (
        inverse_deep + inverse_superficial
    )
    return float((intercept - deep_line[1]) * inverse_deep)
