"""Video files (mp4, avi, anything FFmpeg demuxes) through PyAV, as grayscale frames.

Every decoded frame is identified by its presentation timestamp's place among the
timestamps of all the file's packets, not by how many frames came before it, so a frame
lost to a corrupt packet leaves a gap in `index_N` instead of shifting every later frame
onto the wrong signal sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import av
import numpy as np

from muscle_jax.data.readers.frames import DecodedFrames


def read_video(path: Path | str, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> DecodedFrames:
    """Decodes every frame of a video to uint8 grayscale H x W, then `transform` (e.g. crop and resize).

    Raises naming the file when it does not exist, cannot be opened as a video or yields no
    frame. A file that declares more frames than could be decoded (truncated, corrupt) — by
    its frame count, its packets or its duration at its frame rate — is returned with
    `missing > 0`; `DecodedFrames.require_complete` turns that into an error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: not a readable video ({error})") from error
    with container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        packet_pts, frames, frame_pts, errors = [], [], [], []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None:
                    packet_pts.append(packet.pts)
                try:
                    for frame in packet.decode():
                        gray_HxW = frame.to_ndarray(format="gray")
                        frames.append(transform(gray_HxW) if transform else gray_HxW)
                        frame_pts.append(frame.pts)
                except av.error.FFmpegError as error:
                    errors.append(f"decoder error near {len(frames)} decoded frames: {error}")
        except av.error.FFmpegError as error:
            errors.append(f"demuxer error after {len(frames)} decoded frames: {error}")
        declared = max(int(stream.frames or 0), len(packet_pts), len(frames), frames_by_duration(container, stream))
        time_base = float(stream.time_base) if stream.time_base else None
    if not frames:
        raise ValueError(f"{path}: no frame could be decoded{'; ' + errors[0] if errors else ''}")
    timeline = np.unique(np.asarray(packet_pts, dtype=np.int64))
    if None in frame_pts or time_base is None or len(timeline) < len(frames):
        # Without timestamps only the decoding order identifies a frame: safe when nothing was lost.
        if errors or declared != len(frames):
            raise ValueError(
                f"{path}: frames could not be decoded and the file has no timestamps to say which; "
                f"{errors[0] if errors else f'{declared} declared, {len(frames)} decoded'}"
            )
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        index_N = np.arange(len(frames), dtype=np.int64)
        time_s_N = index_N / rate if rate > 0 else np.full(len(frames), np.nan)
    else:
        index_N = np.searchsorted(timeline, np.asarray(frame_pts, dtype=np.int64)).astype(np.int64)
        if np.any(timeline[np.minimum(index_N, len(timeline) - 1)] != frame_pts) or np.any(np.diff(index_N) <= 0):
            raise ValueError(f"{path}: decoded frame timestamps do not match the file's packets or repeat")
        time_s_N = (np.asarray(frame_pts, dtype=np.int64) - timeline[0]) * time_base
    return DecodedFrames(path, np.stack(frames), index_N, time_s_N.astype(np.float64), declared, tuple(errors))


# A container's duration × frame rate counts frames up to rounding (and variable frame rates):
# a shortfall within this tolerance is not taken for a truncation.
DURATION_TOLERANCE_FRAMES = 1
DURATION_TOLERANCE_FRACTION = 0.02


def frames_by_duration(container, stream) -> int:
    """How many frames the container's declared duration holds at the stream's frame rate, less
    the tolerance (0 when either is unknown). A streamed container (matroska, webm) declares
    no frame count, but its duration still tells a truncated file from a whole one."""
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    if stream.duration is not None and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1e6  # av.time_base: microseconds
    else:
        return 0
    expected = round(seconds * rate)
    return max(0, expected - max(DURATION_TOLERANCE_FRAMES, int(DURATION_TOLERANCE_FRACTION * expected)))


def frame_rate(path: Path | str) -> float:
    """The video's average frame rate (frames per second), read from its header."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.average_rate or stream.guessed_rate)
