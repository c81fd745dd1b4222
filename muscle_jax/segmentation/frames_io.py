"""Reading grayscale frames from image files, folders of images and videos.

Every reader returns uint8 H×W arrays and raises `ValueError` naming the file and the
problem when a file cannot be read or has the wrong number of dimensions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})


def to_gray_uint8(array: np.ndarray, source: str) -> np.ndarray:
    """H×W, H×W×1, H×W×3 or H×W×4 uint8 → H×W uint8 (luma for colour); else a ValueError."""
    if array.dtype != np.uint8:
        raise ValueError(f"{source}: expected 8-bit pixels, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        if array.shape[-1] == 1:
            return array[..., 0]
        rgb = array[..., :3].astype(np.float32)
        return np.clip(np.rint(rgb @ np.array([0.299, 0.587, 0.114], np.float32)), 0, 255).astype(np.uint8)
    if array.ndim != 2:
        raise ValueError(f"{source}: expected a 2-D grayscale or H×W×3 colour image, got shape {array.shape}")
    return array


def read_gray_image(path: str | Path) -> np.ndarray:
    """The image at `path` as uint8 H×W grayscale."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I", "F"):
                raise ValueError(f"{path}: expected an 8-bit image, got PIL mode {image.mode}")
            array = np.asarray(image.convert("L") if image.mode not in ("L", "RGB", "RGBA") else image)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot read as an image ({error})") from error
    return to_gray_uint8(array, str(path))


def iter_video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decodes every frame of the video at `path` as uint8 H×W grayscale."""
    import av  # noqa: PLC0415  (only videos need PyAV)

    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{path}: cannot open as a video ({error})") from error
    with container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


def list_inputs(path: str | Path) -> tuple[str, list[Path]]:
    """('images', sorted image files) for a folder or an image; ('video', [file]) for a video."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: folder holds no images with suffix in {sorted(IMAGE_SUFFIXES)}")
        return "images", files
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video", [path]
    return "images", [path]
