"""Readers of real recordings: frames (video, DICOM cine, image folders) and signals (MAT, CSV).

Each reader returns plain arrays with an account of what it could not read; policy
(error, or counted skip) is the caller's, in `muscle_jax.data.recordings`.
"""

from muscle_jax.data.readers.frames import Crop, DecodedFrames, detect_image_region, resize
from muscle_jax.data.readers.media import read_frames

__all__ = ["Crop", "DecodedFrames", "detect_image_region", "read_frames", "resize"]
