"""Folders of still images (png, jpg, bmp, tif), one per frame, in natural name order."""

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


def read_gray_image(path: Path) -> np.ndarray:
    """One image file as uint8 grayscale H x W (colour through PIL's ITU-R 601 'L' conversion)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return to_uint8(np.asarray(image), path)
            return np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error


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
            gray_HxW = read_gray_image(path)
            if shape is not None and gray_HxW.shape != shape:
                raise ValueError(f"{path}: is {gray_HxW.shape[1]}x{gray_HxW.shape[0]}, the folder's first image is "
                                 f"{shape[1]}x{shape[0]}")
        except ValueError as error:
            if not skip_bad_frames:
                raise
            errors.append(str(error))
            continue
        shape = gray_HxW.shape
        images.append(transform(gray_HxW) if transform else gray_HxW)
        index.append(k)
    if not images:
        raise ValueError(f"{folder}: no image could be read; {errors[0]}")
    index_N = np.asarray(index, dtype=np.int64)
    time_s_N = index_N / fps if fps else np.full(len(index_N), np.nan)
    return DecodedFrames(folder, np.stack(images), index_N, time_s_N, len(paths), tuple(errors))
