"""The overlay video a person watches: each frame with its ROI outline and aponeurosis lines,
beside live traces of every estimated state (ensemble mean with a ±1 sd band across folds, and the
measured signal where the recording has one), written as an mp4 through PyAV.

One renderer serves `live --overlay` and `predict --overlay`. It draws with PIL on a background
drawn once (axes, labels), so a frame costs a resize, a few polylines and the encoder: no
matplotlib per frame. The mp4 is fragmented (an index every keyframe, one per second), so a
session that dies without closing it still leaves a video that decodes up to its last second.
Frames carry their own source frame numbers as timestamps, so a frame that was never rendered
(dropped before estimation) leaves the previous picture on screen for its time, not a shift.

`OverlayWorker` renders off the estimator's path in its own thread, behind a bounded queue: when
the renderer falls more than its queue behind, the newest overlay frame is not rendered (counted
and reported), so that the video never delays an estimate and memory never grows.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

_PANEL_WIDTH = 440
_MARGIN_LEFT, _MARGIN_TOP, _MARGIN_BOTTOM = 58, 20, 16
_BAND, _MEAN, _MEASURED = (176, 196, 232), (31, 84, 180), (20, 20, 20)
_LINE_COLOURS = {
    "roi": (255, 200, 0),
    "superficial_aponeurosis": (0, 220, 120),
    "deep_aponeurosis": (0, 220, 120),
    "fascicle": (255, 80, 80),
}
_OTHER_LINE = (255, 120, 255)


@dataclasses.dataclass(frozen=True)
class Trace:
    """One panel: the channel drawn as a line, its `<name>_std` as a ±1 sd band when there is one,
    and the measured signal of the same name when the recording has it."""

    name: str
    unit: str
    column: int
    std_column: int | None
    value_range: tuple[float, float] | None  # the y range to start from (it grows to hold every value seen)


def traces_for(channels: Sequence, ranges: Mapping[str, tuple[float, float]]) -> tuple[Trace, ...]:
    """One trace per channel that is not itself a spread (`<name>_std`)."""
    names = [c.name for c in channels]
    return tuple(
        Trace(c.name, c.unit, k, names.index(f"{c.name}_std") if f"{c.name}_std" in names else None, ranges.get(c.name))
        for k, c in enumerate(channels) if not c.name.endswith("_std")
    )


def target_ranges(targets: Sequence[str], mean_KxT: np.ndarray, std_KxT: np.ndarray, spread: float = 2.0) -> dict:
    """Fixed y ranges from a run's label statistics: every fold's training mean ± `spread` sd."""
    low_T = (mean_KxT - spread * std_KxT).min(axis=0)
    high_T = (mean_KxT + spread * std_KxT).max(axis=0)
    return {t: (float(low_T[k]), float(high_T[k])) for k, t in enumerate(targets)}


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


class OverlayRenderer:
    """Draws overlay frames for one source (frame size `frame_hw`) and one set of traces. The
    static parts (panel frames, titles, axis labels) are drawn once and redrawn only when a
    trace's range grows; each frame adds the picture, its lines and the traces (numpy-vectorised)."""

    def __init__(self, frame_hw: tuple[int, int], traces: Sequence[Trace], height: int = 480, window_s: float = 5.0):
        self.traces, self.window_s = tuple(traces), float(window_s)
        self.height = _even(height)
        self.scale = self.height / frame_hw[0]
        self.frame_width = _even(frame_hw[1] * self.scale)
        self.width = self.frame_width + _PANEL_WIDTH
        self._font, self._small = _font(14), _font(11)
        self._history: collections.deque = collections.deque()
        self._ranges = [tuple(t.value_range) if t.value_range else None for t in self.traces]
        self._panel_height = self.height // max(1, len(self.traces))
        self._background, self._background_ranges = None, None

    def _boxes(self, k: int) -> tuple[int, int, int, int]:
        top = k * self._panel_height
        return (self.frame_width + _MARGIN_LEFT, top + _MARGIN_TOP, self.width - 8, top + self._panel_height - _MARGIN_BOTTOM)

    def _grow_ranges(self, values_NxC: np.ndarray, measured_NxP: np.ndarray) -> None:
        # A range only grows, so that the axes do not jump from frame to frame.
        for k, trace in enumerate(self.traces):
            spread_N = values_NxC[:, trace.std_column] if trace.std_column is not None else 0.0
            candidates = [values_NxC[:, trace.column] - spread_N, values_NxC[:, trace.column] + spread_N, measured_NxP[:, k]]
            finite = np.concatenate([np.ravel(c) for c in candidates])
            finite = finite[np.isfinite(finite)]
            if not len(finite):
                continue
            low, high = float(finite.min()), float(finite.max())
            current = self._ranges[k]
            self._ranges[k] = (min(low, current[0]), max(high, current[1])) if current else (low, high)

    def _y_limits(self, k: int) -> tuple[float, float]:
        current = self._ranges[k]
        if not current or current[1] <= current[0]:
            centre = current[0] if current else 0.0
            return centre - 1.0, centre + 1.0
        return current

    def _static(self) -> Image.Image:
        if self._background is not None and self._background_ranges == self._ranges:
            return self._background
        background = Image.new("RGB", (self.width, self.height), (255, 255, 255))
        draw = ImageDraw.Draw(background)
        for k, trace in enumerate(self.traces):
            x0, y0, x1, y1 = self._boxes(k)
            low, high = self._y_limits(k)
            draw.rectangle([x0, y0, x1, y1], outline=(160, 160, 160))
            draw.text((x0, y1 + 1), f"-{self.window_s:g} s", fill=(90, 90, 90), font=self._small)
            draw.text((x1, y1 + 1), "now", fill=(90, 90, 90), font=self._small, anchor="ra")
            draw.text((x0 - 4, y0), f"{high:.4g}", fill=(90, 90, 90), font=self._small, anchor="ra")
            draw.text((x0 - 4, y1), f"{low:.4g}", fill=(90, 90, 90), font=self._small, anchor="rd")
            title = f"{trace.name} ({trace.unit})" if trace.unit else trace.name
            draw.text((x0, k * self._panel_height + 3), title, fill=(0, 0, 0), font=self._font)
        self._background, self._background_ranges = background, list(self._ranges)
        return background

    def render(self, gray_HxW: np.ndarray, lines: Mapping[str, np.ndarray], time_s: float, values_C: np.ndarray,
               measured: Mapping[str, float], caption: str) -> np.ndarray:
        """One overlay frame, H × W × 3 uint8; remembers the values for the traces' history."""
        measured_P = np.array([measured.get(t.name, math.nan) for t in self.traces], np.float64)
        self._history.append((time_s, np.asarray(values_C, np.float64), measured_P))
        while time_s - self._history[0][0] > self.window_s:
            self._history.popleft()
        times_N = np.array([h[0] for h in self._history])
        values_NxC = np.stack([h[1] for h in self._history])
        measured_NxP = np.stack([h[2] for h in self._history])
        self._grow_ranges(values_NxC[-1:], measured_NxP[-1:])
        canvas = self._static().copy()
        # An area average: the cheapest resampling that does not alias the speckle.
        picture = Image.fromarray(gray_HxW).resize((self.frame_width, self.height), Image.BOX).convert("RGB")
        draw = ImageDraw.Draw(picture)
        for name, points_Px2 in lines.items():
            for run in _finite_runs(np.asarray(points_Px2, np.float64) * self.scale):
                draw.line(run, fill=_LINE_COLOURS.get(name, _OTHER_LINE), width=2)
        draw.rectangle(draw.textbbox((6, 4), caption, font=self._font), fill=(0, 0, 0))
        draw.text((6, 4), caption, fill=(255, 255, 0), font=self._font)
        canvas.paste(picture, (0, 0))
        draw = ImageDraw.Draw(canvas)
        for k, trace in enumerate(self.traces):
            self._draw_trace(draw, k, trace, times_N, values_NxC, measured_NxP[:, k], time_s)
        return np.asarray(canvas)

    def _draw_trace(self, draw, k: int, trace: Trace, times_N, values_NxC, measured_N, now_s: float) -> None:
        x0, y0, x1, y1 = self._boxes(k)
        low, high = self._y_limits(k)
        x_N = x1 - (now_s - times_N) / self.window_s * (x1 - x0)

        def points(v_N):
            return np.stack([x_N, y1 - (np.clip(v_N, low, high) - low) / (high - low) * (y1 - y0)], axis=-1)

        mean_N = values_NxC[:, trace.column]
        std_N = values_NxC[:, trace.std_column] if trace.std_column is not None else None
        if std_N is not None:
            upper, lower = points(mean_N + std_N), points(mean_N - std_N)
            for run in _finite_runs(np.concatenate([upper, lower], axis=-1)):
                if len(run) > 4:
                    band = np.asarray(run).reshape(-1, 4)
                    draw.polygon(np.concatenate([band[:, :2], band[::-1, 2:]]).ravel().tolist(), fill=_BAND)
        for v_N, colour in ((measured_N, _MEASURED), (mean_N, _MEAN)):
            for run in _finite_runs(points(v_N)):
                draw.line(run, fill=colour, width=2)
        right, top = x1, k * self._panel_height + 3
        if np.isfinite(measured_N[-1]):
            measured_text = f"   measured {measured_N[-1]:.3g}"
            draw.text((right, top), measured_text, fill=_MEASURED, font=self._small, anchor="ra")
            right -= draw.textlength(measured_text, font=self._small)
        estimate = "estimate —"
        if np.isfinite(mean_N[-1]):
            estimate = f"estimate {mean_N[-1]:.3g}" + (f" ± {std_N[-1]:.2g}" if std_N is not None and np.isfinite(std_N[-1]) else "")
        draw.text((right, top), estimate, fill=_MEAN, font=self._small, anchor="ra")


def _finite_runs(points_NxD: np.ndarray) -> list[list[float]]:
    """The rows of `points_NxD` in runs where all are finite (a line is drawn in pieces across
    gaps), each run flattened as PIL takes it; runs of one point are left out."""
    finite_N = np.isfinite(points_NxD).all(axis=-1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite_N.astype(np.int8), [0]])))
    return [points_NxD[start:stop].ravel().tolist() for start, stop in zip(edges[::2], edges[1::2]) if stop - start > 1]


class OverlayVideo:
    """An mp4 (H.264, fragmented; see the module docstring) of overlay frames, each shown at its
    own time in the source (millisecond timestamps, so gaps and variable rates keep their time)."""

    _TIME_BASE = Fraction(1, 1000)

    def __init__(self, path: Path | str, width: int, height: int, frame_rate: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w", format="mp4",
                                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        self._stream = self._container.add_stream("libx264", rate=Fraction(frame_rate).limit_denominator(1001))
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.codec_context.time_base = self._TIME_BASE
        # A keyframe (and so an index fragment) every second.
        self._stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(max(1, round(frame_rate))), "crf": "23"}
        self.frame_rate = float(frame_rate)
        self._last_pts = -1
        self.frames = 0

    def write(self, rgb_HxWx3: np.ndarray, time_s: float) -> None:
        """Appends a frame shown from `time_s` (seconds from the source's first frame) on."""
        pts = int(round(time_s / self._TIME_BASE))
        if pts <= self._last_pts:
            raise ValueError(f"{self.path}: overlay frame at {time_s:.3f} s does not come after the previous one")
        frame = av.VideoFrame.from_ndarray(rgb_HxWx3, format="rgb24")
        frame.pts, frame.time_base = pts, self._TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


def _lower_priority(steps: int = 10) -> None:
    """Makes the calling thread (and the encoder threads it starts) yield the CPU to the reader and
    the estimator: on Linux a thread has its own nice value, inherited by the threads it creates."""
    try:
        thread_id = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, os.getpriority(os.PRIO_PROCESS, thread_id) + steps))
    except (AttributeError, OSError) as error:  # not Linux, or not allowed: the overlay runs at normal priority
        log.info("overlay thread keeps its priority (%s)", error)


def shown_time_s(time_s: float, frame_number: int, frame_rate: float) -> float:
    """When a frame is shown: its own time, or, from a source without timestamps, its number at
    the nominal rate."""
    return time_s if math.isfinite(time_s) else frame_number / frame_rate


@dataclasses.dataclass(frozen=True)
class OverlayFrame:
    """What the renderer needs of one frame; `time_s` as `shown_time_s` gives it."""

    time_s: float
    gray_HxW: np.ndarray
    lines: Mapping[str, np.ndarray]
    values_C: np.ndarray
    measured: Mapping[str, float]
    caption: str


class OverlayWorker:
    """Renders and encodes overlay frames in its own thread, behind a bounded queue (module
    docstring: when it is full, the newest overlay frame is not rendered, and counted)."""

    def __init__(self, renderer: OverlayRenderer, video: OverlayVideo, capacity: int = 64):
        self.renderer, self.video = renderer, video
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.not_rendered = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="overlay", daemon=True)
        self._thread.start()

    def submit(self, item: OverlayFrame) -> None:
        if self._error is not None:
            raise RuntimeError(f"{self.video.path}: the overlay failed ({self._error})") from self._error
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.not_rendered += 1

    def _run(self) -> None:
        _lower_priority()
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                rgb = self.renderer.render(item.gray_HxW, item.lines, item.time_s, item.values_C, item.measured, item.caption)
                self.video.write(rgb, item.time_s)
            except Exception as error:  # noqa: BLE001 — reported to the session through submit/close
                self._error = error

    def close(self) -> None:
        """Renders what is queued, then finalises the mp4 (also after a failure, so it decodes)."""
        self._queue.put(None)
        self._thread.join()
        self.video.close()
        if self._error is not None:
            raise RuntimeError(f"{self.video.path}: the overlay failed ({self._error})") from self._error
