"""DICOM cine loops (multi-frame ultrasound) through pydicom, as grayscale frames.

Frame times come from the file: FrameTimeVector, else FrameTime, else CineRate or
RecommendedDisplayFrameRate. The image region comes from the Sequence of Ultrasound
Regions when the scanner wrote one (`image_region`), which is the DICOM form of a calibration,
and so does the pixel spacing (`pixel_spacing_mm`; else the PixelSpacing attribute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from muscle_jax.data.readers.frames import Crop, DecodedFrames, rgb_to_gray, to_uint8

# Region data type 1 is "tissue" in DICOM PS3.3 C.8.5.5.1.
_TISSUE_REGION = 1
# Physical units code 3 is centimetres (PS3.3 C.8.5.5.1.15).
_CENTIMETRES = 3


def _open(path: Path) -> pydicom.Dataset:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such DICOM file")
    try:
        return pydicom.dcmread(str(path))
    except (InvalidDicomError, OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: not a readable DICOM file ({error})") from error


def frame_times_s(dataset: pydicom.Dataset, num_frames: int, path: Path) -> np.ndarray:
    """Time of each frame from the first (seconds), or NaNs where the file records no timing."""
    if "FrameTimeVector" in dataset:
        increments_ms = np.asarray(dataset.FrameTimeVector, dtype=np.float64).reshape(-1)
        if len(increments_ms) != num_frames:
            raise ValueError(
                f"{path}: FrameTimeVector has {len(increments_ms)} entries for {num_frames} frames"
            )
        increments_ms[0] = 0.0
        return np.cumsum(increments_ms) / 1000.0
    if "FrameTime" in dataset and float(dataset.FrameTime) > 0:
        return np.arange(num_frames) * float(dataset.FrameTime) / 1000.0
    for rate_keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        if rate_keyword in dataset and float(dataset.get(rate_keyword)) > 0:
            return np.arange(num_frames) / float(dataset.get(rate_keyword))
    return np.full(num_frames, np.nan)


def _tissue_regions(dataset: pydicom.Dataset) -> list:
    """The tissue regions of the Sequence of Ultrasound Regions (all regions when none is marked tissue), largest first."""
    regions = list(dataset.get("SequenceOfUltrasoundRegions", []))
    tissue = [r for r in regions if int(r.get("RegionDataType", _TISSUE_REGION)) == _TISSUE_REGION] or regions

    def area(region) -> int:
        width = int(region.get("RegionLocationMaxX1", 0)) - int(region.get("RegionLocationMinX0", 0))
        return width * (int(region.get("RegionLocationMaxY1", 0)) - int(region.get("RegionLocationMinY0", 0)))

    return sorted(tissue, key=area, reverse=True)


def pixel_spacing_mm(dataset: pydicom.Dataset) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm: the largest tissue region's PhysicalDeltaY/X when in
    centimetres, else PixelSpacing; None when the file records neither."""
    regions = [r for r in _tissue_regions(dataset) if "PhysicalDeltaX" in r and "PhysicalDeltaY" in r
               and int(r.get("PhysicalUnitsXDirection", 0)) == _CENTIMETRES
               and int(r.get("PhysicalUnitsYDirection", 0)) == _CENTIMETRES]
    if regions:
        return abs(float(regions[0].PhysicalDeltaY)) * 10.0, abs(float(regions[0].PhysicalDeltaX)) * 10.0
    if "PixelSpacing" in dataset:
        row_mm, column_mm = (float(v) for v in dataset.PixelSpacing)
        return row_mm, column_mm
    return None


def image_region(dataset: pydicom.Dataset) -> Crop | None:
    """The largest tissue region of the Sequence of Ultrasound Regions, or None when there is none."""
    crops = [
        Crop(
            int(r.RegionLocationMinX0),
            int(r.RegionLocationMinY0),
            int(r.RegionLocationMaxX1) - int(r.RegionLocationMinX0) + 1,
            int(r.RegionLocationMaxY1) - int(r.RegionLocationMinY0) + 1,
        )
        for r in _tissue_regions(dataset)
        if "RegionLocationMinX0" in r
    ]
    return max(crops, key=lambda c: c.w * c.h) if crops else None


def read_dicom(path: Path | str, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> DecodedFrames:
    """Every frame of a (multi-frame) DICOM file as uint8 grayscale H x W, then `transform`.

    Colour frames (RGB, or YBR which pydicom converts to RGB) become ITU-R 601 luma; wider
    than 8-bit monochrome is scaled to 8 bits by its BitsStored (the same rule for every frame;
    by the cine's largest value when the header does not say); MONOCHROME1 is inverted so
    bright means echo.
    """
    path = Path(path)
    dataset = _open(path)
    if "PixelData" not in dataset:
        raise ValueError(f"{path}: DICOM file holds no pixel data")
    declared = int(dataset.get("NumberOfFrames", 1) or 1)
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many kinds for missing handlers and short data
        raise ValueError(f"{path}: pixel data could not be decoded ({type(error).__name__}: {error})") from error
    samples = int(dataset.get("SamplesPerPixel", 1))
    if declared == 1:
        pixels = pixels[None]
    if samples == 3:
        gray_NxHxW = rgb_to_gray(pixels)
    else:
        gray_NxHxW = to_uint8(pixels, path, int(dataset.get("BitsStored", 0) or 0) or None)
        if dataset.get("PhotometricInterpretation", "") == "MONOCHROME1":
            gray_NxHxW = 255 - gray_NxHxW
    images = np.stack([transform(g) for g in gray_NxHxW]) if transform else gray_NxHxW
    time_s_N = frame_times_s(dataset, declared, path)
    return DecodedFrames(path, images, np.arange(len(images), dtype=np.int64), time_s_N[: len(images)], declared)


def _read_header(path: Path) -> pydicom.Dataset:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such DICOM file")
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: not a readable DICOM file ({error})") from error


def read_dicom_region(path: Path | str) -> Crop | None:
    """The image region recorded in a DICOM file's header (pixel data is not read)."""
    return image_region(_read_header(Path(path)))


def read_dicom_pixel_spacing_mm(path: Path | str) -> tuple[float, float] | None:
    """The (row, column) pixel spacing in mm recorded in a DICOM file's header, or None."""
    return pixel_spacing_mm(_read_header(Path(path)))
