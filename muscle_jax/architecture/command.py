"""CLI: muscle architecture of every image or frame, as one CSV row each.

    python -m muscle_jax.architecture --input=<image folder | image | video | DICOM cine> --output=<csv>
        [--overlay=<folder or .mp4>] [--mm_per_px=<float>] [--calibration=<file>] [--crop=x,y,w,h]
        [--smooth] [--batch_size=16]

Columns, in this order: image (a folder's images are found recursively and named by their
path relative to --input; a file by its name), frame, time_s, found, reason,
superficial_aponeurosis_angle_deg, deep_aponeurosis_angle_deg, fascicle_angle_deg,
pennation_deg, thickness_px, fascicle_length_px (the input image's own pixels), then
thickness_mm and fascicle_length_mm (empty where the scale is unknown), mirrored (the angles
are those of the mirrored image: its fascicles fell to the right) and, with --smooth, the
Kalman-smoothed fascicle_angle_deg, pennation_deg, thickness_px and fascicle_length_px of
a clip. Angles follow TimTrack's definitions (`muscle_jax.architecture.geometry`).

The scale comes from --mm_per_px, else --calibration (a GasFasTrack `*_params.mat`, or a
JSON file with "mm_per_px" and optionally "crop_xywh"), else a DICOM file's pixel spacing.
The image region comes from --crop, else the calibration, else a DICOM file's ultrasound
regions, else it is found in each image (or once per clip, from the pixels that change).

Bad input: a frame without muscle is a row with found=False and the reason; an unreadable
file in a folder is a row with found=False, is named in the log and counted at the end, and
the run goes on; a corrupt or truncated video or DICOM file stops the run with an error
naming it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from absl import flags
from PIL import Image
from tqdm import tqdm

from muscle_jax.architecture import smoothing
from muscle_jax.architecture.measure import FrameArchitecture, default_config, measure_frames
from muscle_jax.architecture.overlay import draw_overlay
from muscle_jax.architecture.region import find_clip_region
from muscle_jax.data.readers.dicom import read_dicom_pixel_spacing_mm, read_dicom_region
from muscle_jax.data.readers.frames import Crop
from muscle_jax.data.readers.images import IMAGE_SUFFIXES, natural_key, read_gray_image
from muscle_jax.data.readers.media import DICOM_SUFFIXES, VIDEO_SUFFIXES, read_frames
from muscle_jax.data.readers.signals import read_gasfastrack_calibration
from muscle_jax.overlay import OverlayVideo, shown_time_s

log = logging.getLogger(__name__)

COLUMNS = (
    "image", "frame", "time_s", "found", "reason",
    "superficial_aponeurosis_angle_deg", "deep_aponeurosis_angle_deg", "fascicle_angle_deg", "pennation_deg",
    "thickness_px", "fascicle_length_px",
)
SCALED_COLUMNS = ("thickness_mm", "fascicle_length_mm")
EXTRA_COLUMNS = ("mirrored",)
SMOOTHED = ("fascicle_angle_deg", "pennation_deg", "thickness_px", "fascicle_length_px")
# Kalman noise models of the smoothed quantities (measurement sd, white-acceleration sd per s²·√s);
# thickness in px is scaled by the clip's median thickness (the model is in % of it).
NOISE = {
    "fascicle_angle_deg": smoothing.NoiseModel(measurement_sd=1.0, acceleration_sd=60.0),
    "superficial_aponeurosis_angle_deg": smoothing.NoiseModel(measurement_sd=0.5, acceleration_sd=30.0),
    "thickness_pct": smoothing.NoiseModel(measurement_sd=1.5, acceleration_sd=60.0),
}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What is known about the input's geometry before looking at it."""

    crop: Crop | None = None
    mm_per_px: float | None = None


def read_calibration(path: Path) -> Calibration:
    """A GasFasTrack `*_params.mat` (image region and mm per pixel), or a JSON file
    {"mm_per_px": float, "crop_xywh": [x, y, w, h]} (either may be left out)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such calibration file")
    if path.suffix.lower() == ".mat":
        crop, mm_per_px = read_gasfastrack_calibration(path)
        return Calibration(crop, mm_per_px)
    try:
        fields = json.loads(path.read_text())
        crop = Crop(*(int(v) for v in fields["crop_xywh"])) if "crop_xywh" in fields else None
        mm_per_px = float(fields["mm_per_px"]) if "mm_per_px" in fields else None
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f'{path}: expected JSON {{"mm_per_px": float, "crop_xywh": [x, y, w, h]}} ({error})') from error
    return Calibration(crop, mm_per_px)


def image_files(folder: Path) -> list[Path]:
    """Every image below `folder` (recursively), in natural order of the relative path."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"{folder}: holds no image files ({', '.join(IMAGE_SUFFIXES)}), searched recursively")
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def _number(value: float) -> str:
    return f"{value:.6g}" if np.isfinite(value) else ""


def csv_row(name: str, frame: int, time_s: float, result: FrameArchitecture, mm_per_px: float | None) -> dict:
    row = {"image": name, "frame": frame, "time_s": _number(time_s), "found": result.found, "reason": result.reason}
    for column in COLUMNS[5:]:
        row[column] = _number(getattr(result, column))
    scale = mm_per_px if mm_per_px else float("nan")
    row["thickness_mm"] = _number(result.thickness_px * scale)
    row["fascicle_length_mm"] = _number(result.fascicle_length_px * scale)
    row["mirrored"] = result.mirrored if result.found else ""
    return row


def smoothed_columns(time_s_N: np.ndarray, results: list[FrameArchitecture], mm_per_px: float | None) -> dict[str, np.ndarray]:
    """Kalman-smoothed fascicle angle, pennation, thickness and length of a clip (NaN where not found)."""
    alpha = np.array([r.fascicle_angle_deg for r in results])
    beta = np.array([r.superficial_aponeurosis_angle_deg for r in results])
    thickness = np.array([r.thickness_px for r in results])
    default_dt = 1.0 / 30.0  # only where the clip records no times
    columns = {}
    if not np.isfinite(alpha).any():
        return {f"{name}_smoothed": np.full(len(results), np.nan) for name in SMOOTHED}
    reference = float(np.nanmedian(thickness))
    alpha_s = smoothing.kalman_smoother(time_s_N, alpha, NOISE["fascicle_angle_deg"], default_dt)
    beta_s = smoothing.kalman_smoother(time_s_N, beta, NOISE["superficial_aponeurosis_angle_deg"], default_dt)
    thickness_s = reference / 100.0 * smoothing.kalman_smoother(
        time_s_N, 100.0 * thickness / reference, NOISE["thickness_pct"], default_dt)
    pennation_s = alpha_s - beta_s
    with np.errstate(invalid="ignore", divide="ignore"):
        length_s = np.where(pennation_s > 0, thickness_s / np.sin(np.radians(pennation_s)), np.nan)
    columns["fascicle_angle_deg_smoothed"] = alpha_s
    columns["pennation_deg_smoothed"] = pennation_s
    columns["thickness_px_smoothed"] = thickness_s
    columns["fascicle_length_px_smoothed"] = length_s
    if mm_per_px:
        columns["thickness_mm_smoothed"] = thickness_s * mm_per_px
        columns["fascicle_length_mm_smoothed"] = length_s * mm_per_px
    return columns


@dataclasses.dataclass
class Summary:
    rows: int = 0
    found: int = 0
    unreadable: list[str] = dataclasses.field(default_factory=list)


class Output:
    """The CSV (rows in input order, written as they come) and the optional overlays."""

    def __init__(self, path: Path, smooth: bool, overlay: Path | None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", newline="")  # noqa: SIM115 — closed in close()
        self._writer: csv.DictWriter | None = None
        self._smooth = smooth
        self.overlay = overlay
        self.summary = Summary()

    def write(self, rows: list[dict]) -> None:
        if self._writer is None:
            fields = list(COLUMNS) + list(SCALED_COLUMNS) + list(EXTRA_COLUMNS)
            if self._smooth:
                fields += [f"{name}_smoothed" for name in SMOOTHED] + ["thickness_mm_smoothed", "fascicle_length_mm_smoothed"]
            self._writer = csv.DictWriter(self._file, fieldnames=fields, restval="")
            self._writer.writeheader()
        self._writer.writerows(rows)
        self._file.flush()
        self.summary.rows += len(rows)
        self.summary.found += sum(bool(r["found"]) for r in rows)

    def close(self) -> None:
        self._file.close()


def measure_image_folder(folder: Path, files: list[Path], output: Output, calibration: Calibration, batch_size: int) -> None:
    """Every image of `files` (named relative to `folder`), `batch_size` at a time."""
    config = default_config()
    config.batch_size = batch_size
    for start in tqdm(range(0, len(files), batch_size), desc="architecture", unit="batch", leave=False):
        names, frames, rows = [], [], {}
        for index, path in enumerate(files[start : start + batch_size]):
            name = path.relative_to(folder).as_posix() if folder.is_dir() else path.name
            try:
                frames.append(read_gray_image(path))
                names.append((index, name, path))
            except ValueError as error:
                log.warning("%s: unreadable, skipped (%s)", path, error)
                output.summary.unreadable.append(name)
                rows[index] = csv_row(name, 0, float("nan"), FrameArchitecture(False, f"unreadable: {error}"), None)
        results = measure_frames(frames, [calibration.crop] * len(frames), config)
        for (index, name, path), frame, result in zip(names, frames, results, strict=True):
            rows[index] = csv_row(name, 0, float("nan"), result, calibration.mm_per_px)
            if output.overlay is not None:
                target = (output.overlay / name).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(draw_overlay(frame, result)).save(target)
        output.write([rows[i] for i in sorted(rows)])


def clip_geometry(path: Path, frames_NxHxW: np.ndarray, calibration: Calibration) -> Calibration:
    """The clip's image region and scale: the calibration's, else the DICOM header's, else
    (region only) the pixels that change over a sample of frames spread over the clip."""
    crop, mm_per_px = calibration.crop, calibration.mm_per_px
    if path.suffix.lower() in DICOM_SUFFIXES:
        crop = crop or read_dicom_region(path)
        spacing = read_dicom_pixel_spacing_mm(path)
        if mm_per_px is None and spacing is not None:
            if abs(spacing[0] - spacing[1]) > 0.02 * max(spacing):
                raise ValueError(f"{path}: pixels are {spacing[0]:.4f} × {spacing[1]:.4f} mm (rows × columns), not square; "
                                 "angles in pixels would not be angles in the body")
            mm_per_px = float(np.mean(spacing))
    if crop is None:
        sample = frames_NxHxW[np.linspace(0, len(frames_NxHxW) - 1, min(len(frames_NxHxW), 64)).round().astype(int)]
        crop = find_clip_region(sample)
        log.info("%s: image region %s", path, crop)
    return Calibration(crop, mm_per_px)


def measure_clip(path: Path, output: Output, calibration: Calibration, batch_size: int, smooth: bool) -> None:
    """Every frame of a video or DICOM cine; a file that cannot be decoded whole is an error."""
    decoded = read_frames(path).require_complete(skip_bad_frames=False)
    frames = decoded.images_N
    calibration = clip_geometry(path, frames, calibration)
    config = default_config()
    config.batch_size = batch_size
    results: list[FrameArchitecture] = []
    writer = None
    if output.overlay is not None and output.overlay.suffix.lower() == ".mp4":
        times = decoded.time_s_N
        rate = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 and np.isfinite(times).all() else 30.0
        # H.264 needs an even width and height: the last row or column of an odd frame is left out.
        writer = OverlayVideo(output.overlay, frames.shape[2] // 2 * 2, frames.shape[1] // 2 * 2, rate)
    try:
        _measure_chunks(path, decoded, calibration.crop, config, output, writer, results)
    finally:
        if writer is not None:
            writer.close()
    rows = [csv_row(path.name, int(index), float(t), result, calibration.mm_per_px)
            for index, t, result in zip(decoded.index_N, decoded.time_s_N, results, strict=True)]
    if smooth:
        for name, values in smoothed_columns(decoded.time_s_N, results, calibration.mm_per_px).items():
            for row, value in zip(rows, values, strict=True):
                row[name] = _number(value)
    output.write(rows)


def measure_in_batches(frames_NxHxW: np.ndarray, crop: Crop | None, config) -> Iterator[tuple[int, list[FrameArchitecture]]]:
    """(first frame, results) for the clip's frames `config.batch_size` at a time (bounded memory)."""
    for start in tqdm(range(0, len(frames_NxHxW), config.batch_size), desc="architecture", unit="batch", leave=False):
        chunk = list(frames_NxHxW[start : start + config.batch_size])
        yield start, measure_frames(chunk, [crop] * len(chunk), config)


def _measure_chunks(path, decoded, crop, config, output, writer, results) -> None:
    """The clip's frames `batch_size` at a time, with their overlays; results appended to `results`."""
    frames = decoded.images_N
    for start, chunk_results in measure_in_batches(frames, crop, config):
        chunk = frames[start : start + len(chunk_results)]
        results.extend(chunk_results)
        if output.overlay is not None:
            for offset, (frame, result) in enumerate(zip(chunk, chunk_results, strict=True)):
                picture = draw_overlay(frame, result)
                index = int(decoded.index_N[start + offset])
                if writer is not None:
                    even = np.ascontiguousarray(picture[: picture.shape[0] // 2 * 2, : picture.shape[1] // 2 * 2])
                    writer.write(even, shown_time_s(float(decoded.time_s_N[start + offset]), index, writer.frame_rate))
                else:
                    output.overlay.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(picture).save(output.overlay / f"{path.stem}_{index:06d}.png")


def architecture_columns(path: Path, crop: Crop | None, frame_N: np.ndarray, batch_size: int = 16) -> dict[str, np.ndarray]:
    """The architecture of the frames `frame_N` (decoded frame numbers) of a recording, as
    columns for another CSV (`muscle_jax.predict`): `architecture_found` and the numeric
    columns of this CLI, NaN where a frame was not measured."""
    decoded = read_frames(path)
    crop = clip_geometry(Path(path), decoded.images_N, Calibration(crop)).crop
    config = default_config()
    config.batch_size = batch_size
    by_frame = {}
    for start, results in measure_in_batches(decoded.images_N, crop, config):
        by_frame.update(zip(decoded.index_N[start : start + len(results)].tolist(), results, strict=True))
    missing = FrameArchitecture(False, "frame not decoded")
    chosen = [by_frame.get(int(f), missing) for f in frame_N]
    columns = {"architecture_found": np.array([r.found for r in chosen])}
    for name in COLUMNS[5:]:
        columns[name] = np.array([getattr(r, name) for r in chosen], np.float64)
    return columns


def run(input_path: Path, output_path: Path, overlay: Path | None, calibration: Calibration,
        batch_size: int = 16, smooth: bool = False) -> Summary:
    """Measures `input_path` into `output_path` (see the module docstring); returns the summary."""
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: no such file or folder")
    if calibration.mm_per_px is not None and not calibration.mm_per_px > 0:
        raise ValueError(f"mm_per_px must be positive, got {calibration.mm_per_px}")
    is_clip = input_path.is_file() and input_path.suffix.lower() in VIDEO_SUFFIXES + DICOM_SUFFIXES
    if overlay is not None and overlay.suffix.lower() == ".mp4" and not is_clip:
        raise ValueError(f"--overlay={overlay}: an .mp4 overlay needs a video or DICOM input; give a folder for images")
    if smooth and not is_clip:
        raise ValueError("--smooth needs a video or DICOM input: images are not a sequence in time")
    output = Output(output_path, smooth, overlay)
    try:
        if is_clip:
            measure_clip(input_path, output, calibration, batch_size, smooth)
        elif input_path.is_dir():
            measure_image_folder(input_path, image_files(input_path), output, calibration, batch_size)
        elif input_path.suffix.lower() in IMAGE_SUFFIXES:
            measure_image_folder(input_path, [input_path], output, calibration, batch_size)
        else:
            raise ValueError(f"{input_path}: not an image ({', '.join(IMAGE_SUFFIXES)}), a video "
                             f"({', '.join(VIDEO_SUFFIXES)}) or a DICOM file ({', '.join(DICOM_SUFFIXES)})")
    finally:
        output.close()
    return output.summary


def define_flags() -> None:
    """The CLI's flags (defined only when run as a program)."""
    flags.DEFINE_string("input", None, "an image folder (searched recursively), an image, a video or a DICOM cine", required=True)
    flags.DEFINE_string("output", None, "the CSV to write", required=True)
    flags.DEFINE_string("overlay", None, "a folder for one picture per image or frame, or an .mp4 for a clip")
    flags.DEFINE_float("mm_per_px", None, "the image scale; adds thickness_mm and fascicle_length_mm")
    flags.DEFINE_string("calibration", None, "a GasFasTrack *_params.mat or a JSON {mm_per_px, crop_xywh}")
    flags.DEFINE_string("crop", None, "the image region x,y,w,h (0-based pixels); default: found in the frames")
    flags.DEFINE_boolean("smooth", False, "add Kalman-smoothed fascicle angle, pennation, thickness and length (clips)")
    flags.DEFINE_integer("batch_size", 16, "frames per network call")


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    calibration = read_calibration(Path(args.calibration)) if args.calibration else Calibration()
    if args.crop:
        calibration = dataclasses.replace(calibration, crop=Crop.parse(args.crop))
    if args.mm_per_px is not None:
        calibration = dataclasses.replace(calibration, mm_per_px=args.mm_per_px)
    started = time.perf_counter()
    overlay = Path(args.overlay) if args.overlay else None
    summary = run(Path(args.input), Path(args.output), overlay, calibration, args.batch_size, args.smooth)
    seconds = time.perf_counter() - started
    print(f"measured {summary.rows} image(s) or frame(s) in {seconds:.1f} s: {summary.found} found, "
          f"{summary.rows - summary.found} not found"
          + (f", of which {len(summary.unreadable)} unreadable: {', '.join(summary.unreadable)}" if summary.unreadable else "")
          + f"; wrote {args.output}")
