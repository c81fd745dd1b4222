"""Frames of a live source, one at a time, as they arrive: a capture device, a stream piped on
standard input, a file that a scanner is still writing, or a finished file (optionally played at
its own pace, so that a recording stands in for a live scanner).

Frames are numbered by read_video's rule, applied as the stream goes: a frame's number is its
presentation timestamp's place among the timestamps of all packets demuxed so far, so a packet
lost to corruption leaves a gap instead of shifting the later frames; `time_s` counts from the
first packet. Pixels are the same uint8 grayscale as read_video's (FFmpeg's conversion to gray).

Each frame carries `capture_s`, on the caller's clock, the moment the frame existed: for a file
played with `realtime`, the moment it was due (the first packet's arrival plus its timestamp), so
that a reader that falls behind shows up as latency; for every other source, the moment the
decoder handed the frame over (the capture card's and the transport's own delay before that
cannot be seen from here).

What the reader cannot read is reported, never hidden: a source that cannot be opened raises
`SourceError` naming it; a packet that does not decode is yielded as an `UndecodableFrame` (the
caller decides whether that ends the session); a source that fails mid-stream (a device
unplugged, a growing file truncated) raises `SourceError` after the frames already yielded.
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import os
import stat
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from muscle_jax.data.readers.media import DICOM_SUFFIXES, read_frames

KINDS = ("device", "pipe", "growing", "file")
STDIN = "-"
# FFmpeg's name for Video4Linux2 capture devices (PyAV lists it as 'video4linux2,v4l2').
DEVICE_FORMAT = "v4l2"


class SourceError(RuntimeError):
    """A frame source that cannot be opened or that failed mid-stream; the message names it."""


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """What to read and how: `input` is a path, a device or '-' (standard input)."""

    input: str
    kind: str
    realtime: bool = False
    format: str | None = None
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # A growing file has ended once it has not grown for this long.
    follow_timeout_s: float = 2.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"source kind must be one of {KINDS}, got {self.kind!r}")
        if self.realtime and self.kind != "file":
            raise ValueError(f"{self.name}: realtime pacing is for a finished file; a {self.kind} is live already")

    @property
    def name(self) -> str:
        return "standard input" if self.kind == "pipe" else self.input


def kind_of(input_text: str, growing: bool = False) -> str:
    """'-' → pipe; a character device (e.g. /dev/video0) or a path under /dev/ → device; else a
    file, growing when the caller says the scanner is still writing it."""
    if input_text == STDIN:
        return "pipe"
    path = Path(input_text)
    try:
        is_char_device = stat.S_ISCHR(path.stat().st_mode)
    except OSError:
        is_char_device = False
    if is_char_device or input_text.startswith("/dev/"):
        return "device"
    return "growing" if growing else "file"


@dataclasses.dataclass(frozen=True)
class StreamFrame:
    """One decoded frame: its number and time in the source, when it existed, its pixels."""

    index: int
    time_s: float
    capture_s: float
    gray_HxW: np.ndarray


@dataclasses.dataclass(frozen=True)
class UndecodableFrame:
    """A packet the decoder rejected: the frame it held, and why."""

    index: int
    time_s: float
    capture_s: float
    error: str


class _Timeline:
    """Numbers frames by read_video's rule, incrementally: the number of distinct packet timestamps
    below the frame's. Frames must come in increasing timestamp order (decoders output them so)."""

    def __init__(self):
        self._passed = 0
        self._pending: list[int] = []

    def add(self, pts: int) -> None:
        at = bisect.bisect_left(self._pending, pts)
        if at == len(self._pending) or self._pending[at] != pts:
            self._pending.insert(at, pts)

    def index_of(self, pts: int) -> int:
        below = bisect.bisect_left(self._pending, pts)
        index = self._passed + below
        self._passed += below
        del self._pending[:below]
        return index


class _GrowingFile(io.RawIOBase):
    """A file read as a scanner writes it: at its current end, wait for more; end once it has not
    grown for `idle_timeout_s` (or when `stop` is set). A file that shrinks is an error."""

    def __init__(self, path: Path, idle_timeout_s: float, stop: threading.Event, poll_s: float = 0.002):
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 — closed in close()
        self._path, self._idle_timeout_s, self._stop, self._poll_s = path, idle_timeout_s, stop, poll_s
        self._last_growth = time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            count = self._file.readinto(buffer)
            if count:
                self._last_growth = time.monotonic()
                return count
            size = os.fstat(self._file.fileno()).st_size
            if size < self._file.tell():
                raise OSError(f"{self._path} shrank from {self._file.tell()} to {size} bytes while being read")
            if self._stop.is_set() or time.monotonic() - self._last_growth > self._idle_timeout_s:
                return 0
            time.sleep(self._poll_s)

    def close(self) -> None:
        self._file.close()
        super().close()


# What FFmpeg reads of a live source before handing over the first frame: with its default
# (5 MB) the first frames of a GasFasTrack stream waited for the probe, then came in a burst the
# queue had to drop (docs/live.md); 32 KB holds the stream's parameters for NUT, MPEG-TS and
# Matroska streams of these clips.
LIVE_PROBESIZE = "32768"


def _open_container(spec: SourceSpec, stop: threading.Event):
    options = dict(spec.options)
    if spec.kind != "file":
        options.setdefault("probesize", LIVE_PROBESIZE)
    if spec.kind == "device":
        return av.open(spec.input, format=spec.format or DEVICE_FORMAT, options=options)
    if spec.kind == "pipe":
        return av.open("pipe:0", format=spec.format, options=options)
    path = Path(spec.input)
    if path.is_dir():
        raise SourceError(f"{spec.name}: is a folder; live reads a video stream (a device, a pipe or a video file), "
                          "predict reads folders of images")
    if not path.is_file():
        raise SourceError(f"{spec.name}: no such file")
    if spec.kind == "growing":
        return av.open(_GrowingFile(Path(spec.input), spec.follow_timeout_s, stop), format=spec.format, options=options)
    return av.open(spec.input, format=spec.format, options=options)


def options_probesize(spec: SourceSpec) -> str:
    return spec.options.get("probesize", LIVE_PROBESIZE if spec.kind != "file" else "FFmpeg's default")


class LiveSource:
    """An open frame source (`open_source`); iterate `frames()` once, then `close()`."""

    def __init__(self, spec: SourceSpec, clock: Callable[[], float], stop: threading.Event):
        self.spec, self._clock, self._stop = spec, clock, stop
        try:
            self._container = _open_container(spec, stop)
        except FileNotFoundError as error:
            raise SourceError(f"{spec.name}: no such {'capture device' if spec.kind == 'device' else 'file'}") from error
        except (av.error.FFmpegError, OSError) as error:
            raise SourceError(f"{spec.name}: cannot be opened as a video source ({error})") from error
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{spec.name}: has no video stream")
        self._stream = self._container.streams.video[0]
        if not (self._stream.width and self._stream.height):
            self._container.close()
            raise SourceError(
                f"{spec.name}: the frame size was not found in the first {options_probesize(spec)} bytes; "
                "pass --input_options=probesize=<more bytes>"
            )
        self.frames_decoded = 0

    @property
    def frame_rate(self) -> float | None:
        """The frame rate the source declares (frames/s), or None. FFmpeg's guess from the first
        timestamps of a live stream is not used: it is often wrong (60 for a 61 frames/s stream)."""
        rate = self._stream.average_rate
        return float(rate) if rate else None

    @property
    def frame_hw(self) -> tuple[int, int]:
        """Frame height and width as the stream declares them (0 where it does not)."""
        return int(self._stream.height or 0), int(self._stream.width or 0)

    @property
    def frames_declared(self) -> int:
        """How many frames the container says it holds (0 for a live stream)."""
        return int(self._stream.frames or 0)

    def frames(self) -> Iterator[StreamFrame | UndecodableFrame]:
        """Every frame as it arrives (see the module docstring); stops early when `stop` is set."""
        stream, time_base = self._stream, self._stream.time_base
        timeline, first_pts, started_s, last_pts = _Timeline(), None, None, None
        next_untimed = 0  # sources without timestamps: frames in decoding order
        # One reformatter for the whole stream: its conversion context is made once, not per frame
        # (which cost more than the conversion itself), and its pixels are to_ndarray's.
        to_gray = VideoReformatter()
        name = self.spec.name

        def seconds_of(pts: int | None) -> float:
            return float((pts - first_pts) * time_base) if pts is not None and first_pts is not None and time_base else float("nan")

        def place(pts: int | None) -> tuple[int, float]:
            nonlocal next_untimed, last_pts
            if pts is None or time_base is None:
                next_untimed += 1
                return next_untimed - 1, float("nan")
            if last_pts is not None and pts <= last_pts:
                raise SourceError(f"{name}: frame timestamps go backwards or repeat ({pts} after {last_pts})")
            last_pts = pts
            return timeline.index_of(pts), seconds_of(pts)

        try:
            for packet in self._container.demux(stream):
                if self._stop.is_set():
                    return
                due_s = None
                if packet.pts is not None:
                    timeline.add(packet.pts)
                    first_pts = packet.pts if first_pts is None else first_pts
                if self.spec.realtime and packet.size:
                    if packet.pts is None or not time_base:
                        raise SourceError(f"{name}: has no packet timestamps to pace it by; play it without --realtime")
                    started_s = self._clock() if started_s is None else started_s
                    due_s = started_s + seconds_of(packet.pts)
                    if self._stop.wait(max(0.0, due_s - self._clock())):
                        return
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as error:
                    if packet.pts is None and packet.size == 0:
                        raise
                    index, time_s = place(packet.pts)
                    yield UndecodableFrame(index, time_s, due_s if due_s is not None else self._clock(), str(error))
                    continue
                for frame in decoded:
                    gray_HxW = to_gray.reformat(frame, format="gray").to_ndarray()
                    index, time_s = place(frame.pts)
                    self.frames_decoded += 1
                    # A paced file's frame existed at its own due time (later than its packet's
                    # when a decoder reorders frames); any other source's when it was handed over.
                    capture_s = started_s + time_s if self.spec.realtime and started_s is not None and np.isfinite(time_s) else self._clock()
                    yield StreamFrame(index, time_s, capture_s, gray_HxW)
        except (av.error.FFmpegError, OSError) as error:
            raise SourceError(
                f"{name}: stopped delivering frames after {self.frames_decoded} decoded frame(s) ({error})"
            ) from error

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "LiveSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def recorded_frames(path: Path | str, fps: float | None = None) -> Iterator[StreamFrame | UndecodableFrame]:
    """Every frame of a finished recording, one at a time, numbered as `read_frames` numbers them:
    a video through this module; a DICOM cine or an image folder (read whole by their own readers,
    undecodable images left out) frame by frame. `capture_s` is NaN: nothing was captured live."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in DICOM_SUFFIXES:
        decoded = read_frames(path, fps=fps, skip_bad_frames=True)
        for index, time_s, gray_HxW in zip(decoded.index_N, decoded.time_s_N, decoded.images_N):
            yield StreamFrame(int(index), float(time_s), float("nan"), gray_HxW)
        return
    with open_source(SourceSpec(str(path), "file"), lambda: float("nan")) as source:
        yield from source.frames()


def open_source(spec: SourceSpec, clock: Callable[[], float] = time.monotonic, stop: threading.Event | None = None) -> LiveSource:
    """Opens `spec` for reading frame by frame; `SourceError` naming it when it cannot be opened."""
    return LiveSource(spec, clock, stop or threading.Event())
