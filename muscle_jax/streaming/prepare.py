"""`predict`'s preprocessing applied to a live feed, one frame at a time.

For every decoded frame, in order: the image region (the crop `predict.crop_for` gives: `--crop`,
else the run's calibration; else detected, below), the run's ROI source and ROI size through the
same functions `recordings.read_rois` uses (`region_transform`, `segment_regions`), then the
model input: the frame stacked with the S − 1 frames decoded before it, by `pipeline.stack_sequence`
applied to the last S frames (a stack never holds a later frame; at the start of the stream the
first frame repeats, as in `predict`). An undecodable frame is not part of any stack, as `predict
--skip_bad_frames` leaves it out; a frame in which segmentation finds no muscle keeps its (blank)
ROI in its neighbours' stacks, as in `predict`.

Without a calibration, `predict` detects the image region from all the recording's frames; a live
feed has no "all", so the region is detected from the first `detect_frames` frames and then held
for the rest of the session. Those first frames get no estimate (status `detecting_region`), but
feed the stacks of the frames after them.

Every frame is prepared, whether or not the estimator later has time for it, so that the stacks
stay those of consecutive frames however many frames are dropped.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Callable, Mapping

import numpy as np

from muscle_jax.data import pipeline, recordings
from muscle_jax.data.readers.frames import Crop, detect_image_region
from muscle_jax.data.readers.stream import StreamFrame, UndecodableFrame

log = logging.getLogger(__name__)

OK = "ok"
NO_ROI = "no_roi"
UNDECODABLE = "undecodable"
DETECTING_REGION = "detecting_region"
DROPPED = "dropped"
STATUSES = (OK, NO_ROI, UNDECODABLE, DETECTING_REGION, DROPPED)
# Points per aponeurosis curve drawn on the overlay.
_CURVE_POINTS = 24


@dataclasses.dataclass(frozen=True)
class PreparedFrame:
    """One source frame, ready for the estimators (`status == OK`) or accounted for (any other).

    `inputs_HxWxS` is the model input (uint8; None unless OK); `gray_HxW` the whole decoded frame
    (None for an undecodable or dropped frame); `lines` geometry for the overlay in frame pixels,
    name → P×2 (x, y): 'roi' outline, and the aponeuroses where the ROI source found them.
    `prepared_s` is when preparation finished, on the same clock as `capture_s`.
    """

    index: int
    time_s: float
    capture_s: float
    prepared_s: float
    status: str
    reason: str = ""
    gray_HxW: np.ndarray | None = None
    inputs_HxWxS: np.ndarray | None = None
    lines: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def without_pixels(self) -> "PreparedFrame":
        """The account of this frame without its arrays (what is kept of a dropped frame)."""
        return dataclasses.replace(self, gray_HxW=None, inputs_HxWxS=None, lines={})


def rectangle_xy(crop: Crop) -> np.ndarray:
    """The outline of a crop, closed, in frame pixels (x, y)."""
    x0, y0, x1, y1 = crop.x, crop.y, crop.x + crop.w - 1, crop.y + crop.h - 1
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], np.float32)


def _curve_xy(coeffs_D: np.ndarray, column_range: np.ndarray, crop: Crop) -> np.ndarray:
    columns_P = np.linspace(float(column_range[0]), float(column_range[1]), _CURVE_POINTS)
    return np.stack([columns_P + crop.x, np.polyval(coeffs_D, columns_P) + crop.y], axis=-1).astype(np.float32)


class FramePreparer:
    """Turns each frame of a live source into a `PreparedFrame` (module docstring); stateful: it
    holds the image region and the last S ROIs."""

    def __init__(
        self,
        roi_hw: tuple[int, int],
        roi_source: str,
        frame_stack: int,
        crop: Crop | None,
        source_name: str,
        clock: Callable[[], float],
        detect_frames: int = 60,
    ):
        if roi_source not in recordings.ROI_SOURCES:
            raise ValueError(f"roi_source must be one of {recordings.ROI_SOURCES}, got {roi_source!r}")
        if crop is None and detect_frames < 2:
            raise ValueError(f"detecting the image region needs at least 2 frames, got detect_frames={detect_frames}")
        self.roi_hw, self.roi_source, self.frame_stack = (int(roi_hw[0]), int(roi_hw[1])), roi_source, int(frame_stack)
        self.source_name, self._clock, self.detect_frames = source_name, clock, int(detect_frames)
        self._rois = collections.deque(maxlen=self.frame_stack)
        self._detection_window: list[np.ndarray] = []
        self.crop: Crop | None = None
        self._region = None
        if crop is not None:
            self._hold(crop)

    def _hold(self, crop: Crop) -> None:
        self.crop = crop
        self._region = recordings.region_transform(crop, self.roi_hw, self.roi_source, self.source_name)
        self._outline = rectangle_xy(crop)

    def prepare(self, item: StreamFrame | UndecodableFrame) -> PreparedFrame:
        if isinstance(item, UndecodableFrame):
            return PreparedFrame(item.index, item.time_s, item.capture_s, self._clock(), UNDECODABLE, item.error)
        if self.crop is None:
            return self._detect(item)
        region = self._region(item.gray_HxW)
        lines = {"roi": self._outline}
        status, reason = OK, ""
        if self.roi_source == "calibration":
            roi_hxw = region
        else:
            segmented = recordings.segment_regions(region[None], self.roi_hw)
            roi_hxw = segmented.rois_NxhxW[0]
            if segmented.found_N[0]:
                superficial = _curve_xy(segmented.superficial_coeffs_NxD[0], segmented.column_range_Nx2[0], self.crop)
                deep = _curve_xy(segmented.deep_coeffs_NxD[0], segmented.column_range_Nx2[0], self.crop)
                lines = {"roi": np.concatenate([superficial, deep[::-1], superficial[:1]]),
                         "superficial_aponeurosis": superficial, "deep_aponeurosis": deep}
            else:
                status, reason = NO_ROI, segmented.reasons[0]
        inputs_HxWxS = self._stack(roi_hxw)
        return PreparedFrame(
            item.index, item.time_s, item.capture_s, self._clock(), status, reason, item.gray_HxW,
            inputs_HxWxS if status == OK else None, lines,
        )

    def _stack(self, roi_hxw: np.ndarray) -> np.ndarray:
        self._rois.append(roi_hxw)
        window_Nxhxwx1 = np.stack(self._rois)[..., None]
        return pipeline.stack_sequence(window_Nxhxwx1, self.frame_stack)[-1]

    def _detect(self, item: StreamFrame) -> PreparedFrame:
        self._detection_window.append(item.gray_HxW)
        if len(self._detection_window) == self.detect_frames:
            frames_NxHxW = np.stack(self._detection_window)
            try:
                crop = detect_image_region(frames_NxHxW)
            except ValueError as error:
                raise ValueError(
                    f"{self.source_name}: no image region found in the first {self.detect_frames} frames ({error}); "
                    "pass --crop=x,y,w,h or a longer --detect_frames"
                ) from error
            log.info("%s: image region detected from the first %d frames and held: x=%d y=%d w=%d h=%d",
                     self.source_name, self.detect_frames, crop.x, crop.y, crop.w, crop.h)
            self._hold(crop)
            # The frames after the window are stacked with the window's last ones.
            for gray_HxW in frames_NxHxW[-self.frame_stack:]:
                region = self._region(gray_HxW)
                self._stack(region if self.roi_source == "calibration"
                            else recordings.segment_regions(region[None], self.roi_hw).rois_NxhxW[0])
            self._detection_window = []
        return PreparedFrame(
            item.index, item.time_s, item.capture_s, self._clock(), DETECTING_REGION,
            f"the image region is detected from the first {self.detect_frames} frames", item.gray_HxW,
        )
