"""Still images (png, jpg, bmp, tif): one file, or a folder of frames in natural name order.

Colour becomes ITU-R 601 luma. Images wider than 8 bits (16-bit PNG or TIFF) are scaled to
8 bits by one rule for the whole recording — a folder, or the one image — by the smallest
bit depth that holds the recording's largest value (`frames.to_uint8`), so the same pixel
value is the same grey level in every frame; a folder that mixes 8-bit and wider images is
an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from muscle_jax.data.readers.frames import DecodedFrames, to_uint8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def natural_key(name: str) -> tuple:
    """Sorts 'frame_2' before 'frame_10' (numbers compared as numbers)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def list_images(folder: Path | str) -> list[Path]:
    """The image files of a folder in natural order; an error naming the folder when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of images")
    paths = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise ValueError(f"{folder}: holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(paths, key=lambda p: natural_key(p.name))


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I")


def read_pixels(path: Path) -> np.ndarray:
    """One image file as grayscale H x W: uint8, or its own wider integers for a 16-bit image."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in WIDE_MODES:
                return np.asarray(image)
            return np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error


def as_uint8_recording(images: list[np.ndarray], paths: list[Path]) -> list[np.ndarray]:
    """The images of one recording as uint8, wider ones scaled by one rule for all (module doc)."""
    wide = [i for i, image in enumerate(images) if image.dtype != np.uint8]
    if not wide:
        return images
    if len(wide) != len(images):
        narrow = next(i for i in range(len(images)) if i not in wide)
        raise ValueError(f"{paths[narrow]} is 8-bit but {paths[wide[0]]} is wider: one recording must not mix "
                         "bit depths (their grey levels would not compare)")
    top = max(int(image.max()) for image in images if image.size)
    bits = max(8, int(np.ceil(np.log2(top + 1))))
    return [to_uint8(image, path, bits) for image, path in zip(images, paths)]


def read_gray_images(paths: list[Path]) -> list[np.ndarray]:
    """The image files of one recording as uint8 grayscale (sizes may differ)."""
    return as_uint8_recording([read_pixels(path) for path in paths], list(paths))


def read_gray_image(path: Path) -> np.ndarray:
    """One image file, a recording of its own, as uint8 grayscale H x W."""
    return read_gray_images([Path(path)])[0]


def read_image_folder(
    folder: Path | str,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    fps: float | None = None,
    skip_bad_frames: bool = False,
) -> DecodedFrames:
    """Every image of a folder as a frame (uint8 grayscale H x W, then `transform`).

    Frame k is the k-th file in natural order; its time is k / fps (NaN without `fps`).
    An unreadable file or one whose size differs from the first is an error naming it, or,
    with `skip_bad_frames`, a gap in `index_N` counted in `missing`.
    """
    folder = Path(folder)
    paths = list_images(folder)
    images, index, errors, shape = [], [], [], None
    for k, path in enumerate(paths):
        try:
            gray_HxW = read_pixels(path)
            if shape is not None and gray_HxW.shape != shape:
                raise ValueError(f"{path}: is {gray_HxW.shape[1]}x{gray_HxW.shape[0]}, the folder's first image is "
                                 f"{shape[1]}x{shape[0]}")
        except ValueError as error:
            if not skip_bad_frames:
                raise
            errors.append(str(error))
            continue
        shape = gray_HxW.shape
        # 8-bit frames are transformed (cropped, resized) at once; wider ones wait for the one
        # scaling rule of the whole folder.
        images.append(transform(gray_HxW) if transform and gray_HxW.dtype == np.uint8 else gray_HxW)
        index.append(k)
    if not images:
        raise ValueError(f"{folder}: no image could be read; {errors[0]}")
    if any(image.dtype != np.uint8 for image in images):
        images = as_uint8_recording(images, [paths[k] for k in index])
        images = [transform(image) for image in images] if transform else images
    index_N = np.asarray(index, dtype=np.int64)
    time_s_N = index_N / fps if fps else np.full(len(index_N), np.nan)
    return DecodedFrames(folder, np.stack(images), index_N, time_s_N, len(paths), tuple(errors))
