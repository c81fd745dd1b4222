"""B-mode rendering: tissue layers, aponeuroses, fascicles and speckle that moves with them.

The image model, per frame:
  1. Geometry in millimetres (x along the probe from the frame centre, z depth from the skin):
     skin, subcutaneous fat, the superficial aponeurosis, the medial gastrocnemius, the deep
     aponeurosis, and soleus below. The aponeuroses' inner edges are quadratics in x whose
     inclination follows the participant's anatomy and probe tilt and whose curvature grows
     with contraction; their distance is the muscle thickness of the mechanics.
  2. Material coordinates: every pixel is mapped to the tissue point it images. In the muscle
     that point is (insertion of its fascicle on the deep aponeurosis, fractional depth), so the
     fascicles (lines of constant insertion) take the current pennation and curvature, and the
     tissue texture follows the fascicles as they rotate and slide with the belly.
  3. Scatterers: a complex Gaussian field fixed in material coordinates, weighted by the square
     root of the tissue's echogenicity (perimysium striations, fat septa, aponeuroses, skin).
     Sampling it through the material map makes the speckle move with the tissue rather than
     being redrawn.
  4. Point-spread function: a separable Gaussian (axial, lateral) applied to the complex field;
     the envelope's amplitude is then Rayleigh distributed (fully developed speckle) with the
     PSF's correlation length. A little electronic noise is redrawn each frame.
  5. Residual depth attenuation after time-gain compensation, gain, log compression to the
     scanner's dynamic range, 8-bit quantisation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from muscle_jax.data.phantom.config import PhantomConfig
from muscle_jax.data.phantom.mechanics import MuscleState
from muscle_jax.data.phantom.participants import Participant

CHUNK_FRAMES = 16  # frames rendered together: vectorised, with bounded memory
SCATTERER_SMOOTHING_PX = 0.6  # pre-smoothing so bilinear sampling does not modulate the variance
ELECTRONIC_NOISE = 0.03  # amplitude of per-frame noise relative to muscle speckle
SOLEUS_ECHOGENICITY = 1.6
MUSCLE_DISPLAY_FRACTION = 0.12  # where mean muscle echo sits within the dynamic range, before gain
DISPLAY_SMOOTHING_PX = 1.0
MARGIN_MM = 4.0
# Mask labels.
BACKGROUND, SUPERFICIAL, DEEP, MUSCLE = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class TissueCanvas:
    """Complex scatterer field of one participant in material coordinates (three stacked regions).

    Rows/columns are in units of `spacing_mm`; `origins_mm[region] = (row0_mm, col0_mm)` is the
    material coordinate of that region's first canvas pixel and `row_offsets[region]` its first row.
    """

    field_real: np.ndarray
    field_imag: np.ndarray
    spacing_mm: float
    origins_mm: dict
    row_offsets: dict


@dataclasses.dataclass(frozen=True)
class FrameGeometry:
    """Per-frame geometry (arrays of shape [T] or [T, 3]) in millimetres and radians."""

    superficial_mm_Tx3: np.ndarray  # inner edge of the superficial aponeurosis: z = polyval(c, x)
    deep_mm_Tx3: np.ndarray  # inner edge of the deep aponeurosis
    jitter_x_mm_T: np.ndarray
    jitter_z_mm_T: np.ndarray
    pennation_rad_T: np.ndarray
    thickness_mm_T: np.ndarray
    sagitta_mm_T: np.ndarray  # fascicle bow at mid-length
    crimp_mm_T: np.ndarray  # amplitude of the waviness of slack fascicles (across them)
    muscle_shift_mm_T: np.ndarray
    soleus_shift_mm_T: np.ndarray
    muscle_gain_T: np.ndarray  # relative echogenicity of the muscle (drops with contraction)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_px) -> np.ndarray:
    """Gaussian random field with unit standard deviation and correlation length sigma_px."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma_px, mode="wrap")
    return field / max(float(np.std(field)), 1e-12)


def _line_pattern(rng: np.random.Generator, coords_mm: np.ndarray, rate_per_mm: float, width_mm: float) -> np.ndarray:
    """Sum of Gaussian ridges at Poisson positions with exponential (varied) brightness."""
    span = coords_mm[-1] - coords_mm[0]
    count = rng.poisson(rate_per_mm * span)
    centres = rng.uniform(coords_mm[0], coords_mm[-1], size=count)
    heights = rng.exponential(1.0, size=count)
    widths = width_mm * rng.uniform(0.6, 1.4, size=count)
    pattern = np.zeros_like(coords_mm)
    for start in range(0, count, 64):  # bounded memory for long canvases
        c, h, w = centres[start : start + 64], heights[start : start + 64], widths[start : start + 64]
        pattern += np.sum(h[:, None] * np.exp(-0.5 * ((coords_mm[None, :] - c[:, None]) / w[:, None]) ** 2), axis=0)
    return pattern


def _complex_scatterers(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    real = _smooth_noise(rng, shape, SCATTERER_SMOOTHING_PX)
    imag = _smooth_noise(rng, shape, SCATTERER_SMOOTHING_PX)
    return real / np.sqrt(2.0), imag / np.sqrt(2.0)


def build_canvas(participant: Participant, config: PhantomConfig, rng: np.random.Generator) -> TissueCanvas:
    """The participant's tissue: scatterers weighted by echogenicity, fixed in material coordinates."""
    s = config.mm_per_px
    height_mm, width_mm = config.frame_hw[0] * s, config.frame_hw[1] * s
    half_w = 0.5 * width_mm
    p = participant

    def axis(start_mm, stop_mm):
        return start_mm + s * np.arange(int(np.ceil((stop_mm - start_mm) / s)) + 1)

    # Region A: skin and subcutaneous fat, fixed to the probe.
    a_rows = axis(-MARGIN_MM, p.skin_mm + p.fat_mm + p.superficial_aponeurosis_mm + MARGIN_MM)
    a_cols = axis(-half_w - MARGIN_MM, half_w + MARGIN_MM)
    septa = _line_pattern(rng, a_rows, p.septa_per_cm / 10.0, 0.15)
    septa_breaks = 0.5 + 0.5 * np.tanh(_smooth_noise(rng, (a_rows.size, a_cols.size), (1.0 / s, 6.0 / s)))
    fat = p.fat_echogenicity * (1.0 + 15.0 * septa[:, None] * septa_breaks)
    skin = p.skin_echogenicity * (0.7 + 0.3 * septa_breaks)
    echo_a = np.where(a_rows[:, None] < p.skin_mm, skin, fat)

    # Region B: medial gastrocnemius (incl. aponeurosis bands), coordinates (depth at rest, insertion).
    min_pennation = np.deg2rad(8.0)
    reach_mm = (p.thickness_mm * 1.1 + p.superficial_aponeurosis_mm) / np.tan(min_pennation)
    b_rows = axis(-p.superficial_aponeurosis_mm - MARGIN_MM, p.thickness_mm + p.deep_aponeurosis_mm + MARGIN_MM)
    b_cols = axis(-half_w - 50.0, half_w + reach_mm + 50.0)
    rest_pennation = np.deg2rad(p.rest_pennation_deg)
    # Striation spacing is set across fascicles; along the insertion axis it is larger by 1/sin(a).
    fascicle_lines = _line_pattern(
        rng, b_cols, np.sin(rest_pennation) / p.striation_spacing_mm, 0.25 / np.sin(rest_pennation)
    )
    # Perimysium is visible in segments: a field correlated along fascicles, short across them.
    segments = np.clip(_smooth_noise(rng, (b_rows.size, b_cols.size), (3.0 / s, 1.0 / s)) + 0.3, 0.0, None)
    echo_b = 1.0 + p.striation_contrast * fascicle_lines[None, :] * segments / 2.0

    # Region C: soleus below the deep aponeurosis, coordinates (depth below it, along its fascicles).
    c_rows = axis(-MARGIN_MM, height_mm + MARGIN_MM)
    c_cols = axis(-half_w - height_mm / np.tan(np.deg2rad(p.soleus_pennation_deg)) - 50.0, half_w + 50.0)
    # Soleus appears blotchy rather than striated: short, sparse segments on a brighter background.
    soleus_lines = _line_pattern(rng, c_cols, 0.3, 0.6)
    soleus_segments = np.clip(_smooth_noise(rng, (c_rows.size, c_cols.size), (1.5 / s, 1.5 / s)) - 1.0, 0.0, None)
    blotches = np.exp(0.5 * _smooth_noise(rng, (c_rows.size, c_cols.size), (2.0 / s, 3.0 / s)))
    echo_c = SOLEUS_ECHOGENICITY * blotches * (1.0 + 0.2 * p.striation_contrast * soleus_lines[None, :] * soleus_segments)

    gap = 4  # zero rows between regions, never sampled (coordinates are clipped to each region)
    width = max(a_cols.size, b_cols.size, c_cols.size)
    blocks, offsets, origins, row = [], {}, {}, 0
    for name, echo, rows, cols in (("fat", echo_a, a_rows, a_cols), ("muscle", echo_b, b_rows, b_cols), ("soleus", echo_c, c_rows, c_cols)):
        block = np.zeros((echo.shape[0] + gap, width))
        block[: echo.shape[0], : echo.shape[1]] = np.sqrt(echo)
        blocks.append(block)
        offsets[name] = (row, echo.shape[0], echo.shape[1])
        origins[name] = (float(rows[0]), float(cols[0]))
        row += block.shape[0]
    amplitude = np.concatenate(blocks, axis=0)
    real, imag = _complex_scatterers(rng, amplitude.shape)
    return TissueCanvas(
        field_real=(amplitude * real).astype(np.float32),
        field_imag=(amplitude * imag).astype(np.float32),
        spacing_mm=s,
        origins_mm=origins,
        row_offsets=offsets,
    )


def frame_geometry(
    participant: Participant, state: MuscleState, angle_deg_T: np.ndarray, rng: np.random.Generator
) -> FrameGeometry:
    """Aponeurosis curves, fascicle shape, tissue and probe motion at each frame."""
    p = participant
    num_frames = state.pennation_deg.shape[0]
    tilt = np.deg2rad(p.probe_tilt_deg)
    deep_slope = -np.tan(np.deg2rad(p.deep_aponeurosis_rise_deg)) + np.tan(tilt)
    superficial_slope = -np.tan(np.deg2rad(p.deep_aponeurosis_rise_deg - p.aponeurosis_convergence_deg)) + np.tan(tilt)
    curvature_per_mm = 1e-3 * (
        p.rest_aponeurosis_curvature_per_m + p.activation_aponeurosis_curvature_per_m * state.active_fraction
    )
    # z = c2 x² + c1 x + c0; positive curvature bows the aponeuroses towards the skin at the centre.
    superficial_depth = p.skin_mm + p.fat_mm + p.superficial_aponeurosis_mm
    vertical_thickness = state.thickness_mm / np.cos(np.arctan(deep_slope))
    ones = np.ones(num_frames)
    superficial = np.stack([0.5 * curvature_per_mm, superficial_slope * ones, superficial_depth * ones], axis=1)
    deep = np.stack([0.5 * curvature_per_mm, deep_slope * ones, superficial_depth + vertical_thickness], axis=1)

    def jitter(scale):
        # Hand-held probe: slow smooth drift, correlated over ~0.3 s.
        return scale * _smooth_noise(rng, (num_frames + 32,), 8.0)[16:-16] if num_frames else np.zeros(0)

    pennation = np.deg2rad(state.pennation_deg)
    curvature_f = 1e-3 * p.max_fascicle_curvature_per_m * state.active_fraction
    return FrameGeometry(
        superficial_mm_Tx3=superficial,
        deep_mm_Tx3=deep,
        jitter_x_mm_T=jitter(p.probe_jitter_mm),
        jitter_z_mm_T=jitter(0.5 * p.probe_jitter_mm),
        pennation_rad_T=pennation,
        thickness_mm_T=state.thickness_mm,
        sagitta_mm_T=state.fascicle_length_mm**2 * curvature_f / 8.0,
        crimp_mm_T=p.slack_wave_mm * state.slack,
        muscle_shift_mm_T=p.tissue_displacement_share * state.belly_displacement_mm + p.probe_offset_mm,
        soleus_shift_mm_T=0.3 * p.moment_arm_mm * np.deg2rad(angle_deg_T) + p.probe_offset_mm,
        muscle_gain_T=p.muscle_echogenicity * (1.0 - p.activation_echo_drop * state.active_fraction),
    )


def curves_in_pixels(geometry: FrameGeometry, config: PhantomConfig) -> tuple[np.ndarray, np.ndarray]:
    """Aponeurosis inner edges as pixel polynomials `row = polyval(c, column)`, each [T, 3]."""
    s = config.mm_per_px
    centre = 0.5 * (config.frame_hw[1] - 1)
    columns = np.array([0.0, centre, config.frame_hw[1] - 1.0])

    def to_pixels(coeffs_Tx3):
        x_mm_TxK = (columns[None, :] - centre) * s + geometry.jitter_x_mm_T[:, None]
        z_mm_TxK = (
            coeffs_Tx3[:, :1] * x_mm_TxK**2 + coeffs_Tx3[:, 1:2] * x_mm_TxK + coeffs_Tx3[:, 2:3]
        ) - geometry.jitter_z_mm_T[:, None]
        rows_TxK = z_mm_TxK / s
        # A quadratic through three points is exact: solve the Vandermonde system per frame.
        vandermonde = np.stack([columns**2, columns, np.ones(3)], axis=1)
        return np.linalg.solve(vandermonde, rows_TxK.T).T

    return to_pixels(geometry.superficial_mm_Tx3), to_pixels(geometry.deep_mm_Tx3)


def _psf_rms(sigma_px: tuple[float, float]) -> float:
    """RMS of unit complex white noise after the PSF, to express echo relative to muscle."""
    noise = np.random.default_rng(0).normal(size=(2, 96, 96))
    blurred = ndimage.gaussian_filter(noise, (0, *sigma_px), mode="wrap")
    return float(np.sqrt(np.mean(blurred**2)))


def render_frames(
    participant: Participant,
    canvas: TissueCanvas,
    geometry: FrameGeometry,
    config: PhantomConfig,
    rng: np.random.Generator,
    keep_envelope: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B-mode frames (uint8 [T, H, W]) and masks (uint8 [T, H, W], labels as in this module).

    With keep_envelope, also the speckle envelope before log compression (float32 [T, H, W],
    1 = RMS of muscle speckle), for checking its statistics.
    """
    num_frames = geometry.pennation_rad_T.shape[0]
    height, width = config.frame_hw
    frames = np.empty((num_frames, height, width), np.uint8)
    masks = np.empty((num_frames, height, width), np.uint8)
    envelopes = np.empty((num_frames, height, width), np.float32) if keep_envelope else None
    psf_rms = _psf_rms((participant.psf_axial_mm / config.mm_per_px, participant.psf_lateral_mm / config.mm_per_px))
    for start in range(0, num_frames, CHUNK_FRAMES):
        chunk = slice(start, min(start + CHUNK_FRAMES, num_frames))
        envelope, depth_mm, masks[chunk] = _render_chunk(participant, canvas, geometry, chunk, config, rng, psf_rms)
        frames[chunk] = display(envelope, depth_mm, participant)
        if keep_envelope:
            envelopes[chunk] = envelope
    return (frames, masks, envelopes) if keep_envelope else (frames, masks)


@dataclasses.dataclass(frozen=True)
class _ChunkGeometry:
    """Per-pixel geometry of a chunk of frames (arrays broadcastable to [T, H, W], float32, mm)."""

    x: np.ndarray  # tissue position along the probe seen by each column
    z: np.ndarray  # depth seen by each row
    below_top: np.ndarray  # depth below the superficial aponeurosis' inner edge
    below_bottom: np.ndarray  # depth below the deep aponeurosis' inner edge
    fraction: np.ndarray  # 0 at the superficial, 1 at the deep inner edge


def _per_frame(values_T: np.ndarray) -> np.ndarray:
    return values_T[:, None, None]


def _chunk_geometry(geometry: FrameGeometry, chunk: slice, config: PhantomConfig) -> _ChunkGeometry:
    s = config.mm_per_px
    height, width = config.frame_hw
    probe_x_1x1xW = ((np.arange(width, dtype=np.float32) - 0.5 * (width - 1)) * s)[None, None, :]
    probe_z_1xHx1 = (np.arange(height, dtype=np.float32) * s)[None, :, None]
    x_Tx1xW = probe_x_1x1xW + _per_frame(geometry.jitter_x_mm_T[chunk].astype(np.float32))
    z_TxHx1 = probe_z_1xHx1 + _per_frame(geometry.jitter_z_mm_T[chunk].astype(np.float32))

    def curve(coeffs_Tx3):
        c = coeffs_Tx3[chunk].astype(np.float32)
        return _per_frame(c[:, 0]) * x_Tx1xW**2 + _per_frame(c[:, 1]) * x_Tx1xW + _per_frame(c[:, 2])

    top_Tx1xW, bottom_Tx1xW = curve(geometry.superficial_mm_Tx3), curve(geometry.deep_mm_Tx3)
    below_top = z_TxHx1 - top_Tx1xW
    return _ChunkGeometry(
        x=x_Tx1xW,
        z=z_TxHx1,
        below_top=below_top,
        below_bottom=z_TxHx1 - bottom_Tx1xW,
        fraction=below_top / (bottom_Tx1xW - top_Tx1xW),
    )


def _muscle_coordinates(p: Participant, geometry: FrameGeometry, chunk: slice, g: _ChunkGeometry):
    """(depth at rest, insertion on the deep aponeurosis) of the muscle point each pixel images."""

    def frame_value(name):
        return _per_frame(getattr(geometry, name)[chunk].astype(np.float32))

    pennation, thickness = frame_value("pennation_rad_T"), frame_value("thickness_mm_T")
    sin_pennation = np.sin(pennation)
    bow = 4.0 * g.fraction * (1.0 - g.fraction) * frame_value("sagitta_mm_T") / sin_pennation
    insertion = g.x + (1.0 - g.fraction) * thickness / np.tan(pennation) + bow
    # Crimp of slack fascicles: a wave along each fascicle, in phase over neighbouring fascicles.
    along_mm = g.fraction * thickness / sin_pennation
    wave_phase = np.float32(2 * np.pi / p.slack_wavelength_mm) * along_mm + np.float32(2 * np.pi / 15.0) * insertion
    insertion = insertion + frame_value("crimp_mm_T") / sin_pennation * np.sin(wave_phase)
    return g.fraction * np.float32(p.thickness_mm), insertion - frame_value("muscle_shift_mm_T")


def _canvas_coordinates(canvas: TissueCanvas, region: str, rows_mm: np.ndarray, cols_mm: np.ndarray):
    """Canvas (row, column) of material coordinates in `region`, clamped inside the region."""
    row0, num_rows, num_cols = canvas.row_offsets[region]
    origin_row, origin_col = canvas.origins_mm[region]
    scale = np.float32(1.0 / canvas.spacing_mm)
    rows = np.clip((rows_mm - np.float32(origin_row)) * scale, 0, num_rows - 1) + np.float32(row0)
    cols = np.clip((cols_mm - np.float32(origin_col)) * scale, 0, num_cols - 1)
    return rows, cols


def _render_chunk(participant, canvas, geometry, chunk, config, rng, psf_rms):
    """Speckle envelope, depth and mask of frames `chunk` (each [T, H, W])."""
    p = participant
    g = _chunk_geometry(geometry, chunk, config)
    in_fat = g.below_top < -p.superficial_aponeurosis_mm
    in_soleus = g.below_bottom >= p.deep_aponeurosis_mm
    in_superficial = ~in_fat & (g.below_top < 0)
    in_deep = ~in_soleus & (g.below_bottom >= 0)
    in_muscle = (g.below_top >= 0) & (g.below_bottom < 0)

    # Skin and fat are fixed to the probe; muscle and soleus move in their own coordinates.
    height, width = config.frame_hw
    probe_x = ((np.arange(width, dtype=np.float32) - 0.5 * (width - 1)) * config.mm_per_px)[None, None, :]
    probe_z = (np.arange(height, dtype=np.float32) * config.mm_per_px)[None, :, None]
    fat_r, fat_c = _canvas_coordinates(canvas, "fat", probe_z, probe_x)
    mus_r, mus_c = _canvas_coordinates(canvas, "muscle", *_muscle_coordinates(p, geometry, chunk, g))
    soleus_along = g.x - g.below_bottom * np.float32(1.0 / np.tan(np.deg2rad(p.soleus_pennation_deg)))
    soleus_along = soleus_along - _per_frame(geometry.soleus_shift_mm_T[chunk].astype(np.float32))
    sol_r, sol_c = _canvas_coordinates(canvas, "soleus", g.below_bottom, soleus_along)
    rows = np.where(in_fat, fat_r, np.where(in_soleus, sol_r, mus_r))
    cols = np.where(in_fat, fat_c, np.where(in_soleus, sol_c, mus_c))
    coords = np.stack([rows.ravel(), cols.ravel()])
    real = ndimage.map_coordinates(canvas.field_real, coords, order=1, mode="nearest").reshape(rows.shape)
    imag = ndimage.map_coordinates(canvas.field_imag, coords, order=1, mode="nearest").reshape(rows.shape)

    # Echogenicity that depends on the current state rather than on the tissue point.
    superficial_profile = np.sqrt(np.maximum(np.sin(np.pi * np.clip(-g.below_top / p.superficial_aponeurosis_mm, 0, 1)), 0))
    deep_profile = np.sqrt(np.maximum(np.sin(np.pi * np.clip(g.below_bottom / p.deep_aponeurosis_mm, 0, 1)), 0))
    apo = np.float32(p.aponeurosis_echogenicity)
    scale = np.ones_like(rows)
    scale = np.where(in_muscle, np.sqrt(_per_frame(geometry.muscle_gain_T[chunk].astype(np.float32))), scale)
    scale = np.where(in_superficial, np.sqrt(apo * (0.15 + 0.85 * superficial_profile)), scale)
    scale = np.where(in_deep, np.sqrt(apo * (0.15 + 0.85 * deep_profile)), scale)
    noise = np.float32(ELECTRONIC_NOISE)
    real = real * scale + noise * rng.standard_normal(size=real.shape, dtype=np.float32)
    imag = imag * scale + noise * rng.standard_normal(size=imag.shape, dtype=np.float32)

    sigma_px = (p.psf_axial_mm / config.mm_per_px, p.psf_lateral_mm / config.mm_per_px)
    real = ndimage.gaussian_filter(real, (0, *sigma_px), mode="nearest")
    imag = ndimage.gaussian_filter(imag, (0, *sigma_px), mode="nearest")
    envelope = np.sqrt(real**2 + imag**2) * np.float32(1.0 / psf_rms)

    mask = np.full(rows.shape, BACKGROUND, np.uint8)
    mask[in_superficial] = SUPERFICIAL
    mask[in_deep] = DEEP
    mask[in_muscle] = MUSCLE
    return envelope, np.broadcast_to(g.z, rows.shape), mask


def display(envelope_TxHxW: np.ndarray, depth_mm_TxHxW: np.ndarray, participant: Participant) -> np.ndarray:
    """Scanner display: log compression, residual attenuation, gain, dynamic range, 8 bits.

    A frame pixel covers several speckle cells of the scanner's native image; the display
    averages them, which we model by smoothing the log-compressed level over about one pixel.
    """
    p = participant
    level_db = np.float32(20.0) * np.log10(envelope_TxHxW + np.float32(1e-6))
    level = ndimage.gaussian_filter(level_db, (0, DISPLAY_SMOOTHING_PX, DISPLAY_SMOOTHING_PX), mode="nearest")
    level = level - np.float32(p.residual_attenuation_db_per_mm) * depth_mm_TxHxW + np.float32(p.gain_db)
    floor_db = -MUSCLE_DISPLAY_FRACTION * p.dynamic_range_db
    scaled = (level - np.float32(floor_db)) * np.float32(255.0 / p.dynamic_range_db)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
