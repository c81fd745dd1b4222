"""Frame preprocessing shared by every reader: grayscale, the image region, the ROI size.

A screen capture or a scanner export holds the B-mode image inside a frame of user
interface (scale bars, settings, logos). `Crop` is that image region in 0-based pixel
coordinates; it comes from a calibration (GasFasTrack's `imCropRect`, DICOM's ultrasound
regions) or from `detect_image_region`, which finds the part of the picture that moves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class Crop:
    """The image region: columns [x, x + w), rows [y, y + h), 0-based."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def from_matlab_rect(cls, rect_xywh) -> "Crop":
        """From MATLAB's 1-based [x y w h] (as `imcrop` and GasFasTrack's `imCropRect` give it)."""
        x, y, w, h = (int(round(float(v))) for v in rect_xywh)
        return cls(x - 1, y - 1, w, h)

    @classmethod
    def parse(cls, text: str) -> "Crop":
        """From 'x,y,w,h' (0-based), as the prediction CLI's --crop flag takes it."""
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError(f"a crop is 'x,y,w,h' (0-based pixels), got {text!r}")
        return cls(*(int(p) for p in parts))

    def apply(self, image_HxW: np.ndarray, source: Path | str = "<frame>") -> np.ndarray:
        """The region of one frame; an error naming `source` if it does not fit inside the frame."""
        height, width = image_HxW.shape[:2]
        if self.x < 0 or self.y < 0 or self.w <= 0 or self.h <= 0 or self.x + self.w > width or self.y + self.h > height:
            raise ValueError(
                f"{source}: crop x={self.x} y={self.y} w={self.w} h={self.h} does not fit a {width}x{height} frame"
            )
        return image_HxW[self.y : self.y + self.h, self.x : self.x + self.w]


def rgb_to_gray(image_HxWx3: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an 8-bit RGB image (the weights PIL's 'L' mode and FFmpeg use), uint8."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gray = image_HxWx3[..., :3].astype(np.float32) @ weights
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def to_uint8(image: np.ndarray, source: Path | str, bits: int | None = None) -> np.ndarray:
    """8-bit pixels as they are; wider integer pixels scaled by one rule for the whole array
    (pass a whole recording): by `bits` (a DICOM's BitsStored) when given, else by the smallest
    bit depth that holds the array's largest value, so a pixel value is the same grey level
    in every frame of the recording."""
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"{source}: expected integer pixels, got {image.dtype}")
    if bits is None:
        top = float(image.max()) if image.size else 0.0
        if top <= 255:
            return image.astype(np.uint8)
        bits = int(np.ceil(np.log2(top + 1)))
    return np.clip(image.astype(np.float32) * (255.0 / (2**bits - 1)), 0, 255).round().astype(np.uint8)


def resize(image_HxW: np.ndarray, roi_hw: tuple[int, int]) -> np.ndarray:
    """Resizes a uint8 frame to `roi_hw` (PIL bilinear, which averages over the footprint when shrinking)."""
    roi_h, roi_w = roi_hw
    if image_HxW.shape == (roi_h, roi_w):
        return image_HxW
    return np.asarray(Image.fromarray(image_HxW).resize((roi_w, roi_h), Image.BILINEAR))


def detect_image_region(frames_NxHxW: np.ndarray, min_fraction: float = 0.05) -> Crop:
    """The bounding box of the pixels that change over time, for screen captures without a calibration.

    Speckle moves in every part of a B-mode image while the user interface around it stays
    still, so the per-pixel standard deviation over frames separates the two. A single frame
    (or a static clip) has no such signal and is an error: pass a calibration crop instead.
    """
    if frames_NxHxW.ndim != 3 or frames_NxHxW.shape[0] < 2:
        raise ValueError("detecting the image region needs at least 2 grayscale frames (N x H x W)")
    std_HxW = frames_NxHxW.astype(np.float32).std(axis=0)
    moving_HxW = std_HxW > max(1.0, 0.1 * float(np.percentile(std_HxW, 99)))
    # Closing fills speckle-free patches (anechoic regions) inside the image.
    moving_HxW = ndimage.binary_closing(moving_HxW, structure=np.ones((9, 9)), iterations=2)
    moving_HxW = ndimage.binary_opening(moving_HxW, structure=np.ones((5, 5)))
    labels_HxW, count = ndimage.label(moving_HxW)
    if count == 0:
        raise ValueError("no moving image region found: the frames do not change over time")
    sizes = ndimage.sum_labels(moving_HxW, labels_HxW, index=np.arange(1, count + 1))
    largest = int(np.argmax(sizes)) + 1
    if sizes[largest - 1] < min_fraction * moving_HxW.size:
        raise ValueError(
            f"the moving region covers only {sizes[largest - 1] / moving_HxW.size:.1%} of the frame: "
            "no image region found; pass a calibration crop"
        )
    rows, cols = np.nonzero(labels_HxW == largest)
    return Crop(int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1))


@dataclasses.dataclass(frozen=True)
class DecodedFrames:
    """What a reader got out of one source, with an account of what it could not get.

    `images_N` holds the decoded frames (after the caller's transform), `index_N` their
    frame numbers in the source (0-based, increasing) and `time_s_N` their times from the
    source's first frame. `declared` is the number of frames the source says it holds;
    `declared - len(index_N)` of them could not be decoded, for the reasons in `errors`.
    """

    source: Path
    images_N: np.ndarray
    index_N: np.ndarray
    time_s_N: np.ndarray
    declared: int
    errors: tuple[str, ...] = ()

    @property
    def missing(self) -> int:
        return self.declared - len(self.index_N)

    def require_complete(self, skip_bad_frames: bool) -> "DecodedFrames":
        """Raises naming the source when frames are missing, unless the caller asked to skip them."""
        if self.missing > 0 and not skip_bad_frames:
            decoded = len(self.index_N)
            raise ValueError(
                f"{self.source}: truncated or corrupt: it declares {self.declared} frames but only {decoded} "
                f"could be decoded{'; ' + self.errors[0] if self.errors else ''} "
                "(set skip_bad_frames to keep the decodable ones, counted as skipped)"
            )
        return self
