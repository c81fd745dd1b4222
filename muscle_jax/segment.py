"""CLI: frames → aponeurosis masks, ROI crops and one CSV row per frame.

    python -m muscle_jax.segment --input=<image | folder of images | video> --output=<folder>
        [--checkpoint=<file.msgpack>] [--roi_height=128 --roi_width=128] [--batch_size=16]

Writes, per input image (or video frame `<video>_<frame index>`):
  <output>/<name>.png      the aponeurosis mask, 0/255, the input's size
  <output>/roi/<name>.png  the ROI between the aponeuroses (only where they were found)
  <output>/segmentation.csv  name, found, thickness_px, the superficial and deep curve
                             coefficients (row = polyval(coeffs, column), input pixels),
                             the ROI's first and last column, and the reason when not found.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from absl import app, flags
from PIL import Image
from tqdm import tqdm

from muscle_jax.segmentation import frames_io
from muscle_jax.segmentation.inference import SegmentationResult, segment_frames

def named_frames(input_path: Path) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """(name, uint8 H×W frame) for every input frame, and how many there are when known."""
    kind, files = frames_io.list_inputs(input_path)
    if kind == "images":
        return ((f.stem, frames_io.read_gray_image(f)) for f in files), len(files)
    video = files[0]
    frames = frames_io.iter_video_frames(video)
    return ((f"{video.stem}_{index:06d}", frame) for index, frame in enumerate(frames)), None


def same_size_batches(
    named: Iterable[tuple[str, np.ndarray]], batch_size: int
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Consecutive frames of one size, at most `batch_size` at a time, in input order."""
    names, frames = [], []
    for name, frame in named:
        if frames and (frame.shape != frames[0].shape or len(frames) == batch_size):
            yield names, np.stack(frames)
            names, frames = [], []
        names.append(name)
        frames.append(frame)
    if frames:
        yield names, np.stack(frames)


def csv_header(degree_plus_one: int) -> list[str]:
    coefficient_columns = [f"{curve}_c{i}" for curve in ("superficial", "deep") for i in range(degree_plus_one)]
    return ["name", "found", "thickness_px", *coefficient_columns, "column_first", "column_last", "reason"]


def csv_rows(names: list[str], result: SegmentationResult) -> Iterator[list]:
    for i, name in enumerate(names):
        numbers = [result.thickness_px_N[i], *result.superficial_coeffs_NxD[i], *result.deep_coeffs_NxD[i],
                   *result.column_range_Nx2[i]]
        yield [name, bool(result.found_N[i]), *(f"{x:.6g}" for x in numbers), result.reasons[i]]


def write_outputs(output_dir: Path, names: list[str], result: SegmentationResult) -> None:
    for i, name in enumerate(names):
        Image.fromarray(result.masks_NxHxW[i]).save(output_dir / f"{name}.png")
        if result.found_N[i]:
            Image.fromarray(result.rois_NxhxW[i]).save(output_dir / "roi" / f"{name}.png")


def segment_input(
    input_path: Path, output_dir: Path, checkpoint: str | None, roi_hw: tuple[int, int], batch_size: int
) -> int:
    """Segments every frame of `input_path` into `output_dir`; returns how many frames were written."""
    if input_path.resolve() == output_dir.resolve():
        raise ValueError(f"{output_dir}: the output folder must differ from the input folder (masks share names)")
    named, total = named_frames(input_path)
    (output_dir / "roi").mkdir(parents=True, exist_ok=True)
    count = 0
    with open(output_dir / "segmentation.csv", "w", newline="") as csv_file:
        writer = csv.writer(csv_file)
        with tqdm(total=total, unit="frame", desc="segment") as progress:
            for names, frames in same_size_batches(named, batch_size):
                result = segment_frames(frames, roi_hw, checkpoint=checkpoint, batch_size=batch_size)
                if count == 0:
                    writer.writerow(csv_header(result.superficial_coeffs_NxD.shape[1]))
                writer.writerows(csv_rows(names, result))
                write_outputs(output_dir, names, result)
                count += len(names)
                progress.update(len(names))
    return count


def define_flags() -> None:
    """The CLI's flags; defined only when run as a program, so importing this module (tests,
    other tools) never collides with another module's absl flags of the same name."""
    flags.DEFINE_string("input", None, "an image file, a folder of images, or a video", required=True)
    flags.DEFINE_string("output", None, "folder for masks, ROI crops and segmentation.csv", required=True)
    flags.DEFINE_string("checkpoint", None, "segmentation checkpoint; default: the shipped model")
    flags.DEFINE_integer("roi_height", 128, "ROI height in pixels")
    flags.DEFINE_integer("roi_width", 128, "ROI width in pixels")
    flags.DEFINE_integer("batch_size", 16, "frames per network call")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    args = flags.FLAGS
    try:
        count = segment_input(
            Path(args.input), Path(args.output), args.checkpoint, (args.roi_height, args.roi_width), args.batch_size
        )
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(f"segmented {count} frame(s) into {args.output}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
