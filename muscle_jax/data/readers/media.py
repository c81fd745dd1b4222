"""One entry point for every kind of frame source: a video file, a DICOM file or a folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from muscle_jax.data.readers.dicom import read_dicom
from muscle_jax.data.readers.frames import DecodedFrames
from muscle_jax.data.readers.images import read_image_folder
from muscle_jax.data.readers.video import read_video

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")


def is_frame_source(path: Path) -> bool:
    """Whether `path` names something `read_frames` reads (by suffix, or a folder)."""
    return path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES + DICOM_SUFFIXES


def read_frames(
    path: Path | str,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    fps: float | None = None,
    skip_bad_frames: bool = False,
) -> DecodedFrames:
    """Frames of `path` as uint8 grayscale (then `transform`): a folder → its images (at `fps`),
    `.dcm` → DICOM cine, anything else → a video through FFmpeg."""
    path = Path(path)
    if path.is_dir():
        return read_image_folder(path, transform, fps=fps, skip_bad_frames=skip_bad_frames)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return read_dicom(path, transform)
    return read_video(path, transform)
