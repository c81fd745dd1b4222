"""CLI: frames → aponeurosis masks, ROI crops and one CSV row per frame.

    python -m muscle_jax.segment --input=<image | folder of images | video | DICOM> --output=<folder>
        [--checkpoint=<file.msgpack>] [--roi_height=128 --roi_width=128] [--batch_size=16]

Frames are read by `muscle_jax.data.readers`, as everywhere else (8- and 16-bit images,
colour as luma). A folder's images may differ in size; they are named by their stem, or by
their whole file name where two stems would collide (`x.png` and `x.jpg` → `x_png`, `x_jpg`).
Writes, per input image (or video frame `<video>_<frame index>`):
  <output>/<name>.png      the aponeurosis mask, 0/255, the input's size
  <output>/roi/<name>.png  the ROI between the aponeuroses (only where they were found)
  <output>/segmentation.csv  name, found, thickness_px, the superficial and deep curve
                             coefficients (row = polyval(coeffs, column), input pixels),
                             the ROI's first and last column, and the reason when not found.
"""

from __future__ import annotations

import collections
import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from absl import flags
from PIL import Image
from tqdm import tqdm

from muscle_jax import cli
from muscle_jax.data.readers import images as image_files
from muscle_jax.data.readers.media import read_frames
from muscle_jax.segmentation.inference import SegmentationResult, segment_frames


def output_names(files: list[Path]) -> list[str]:
    """Each image's output name: its stem, or its whole name ('.' → '_') where stems collide."""
    stems = collections.Counter(f.stem for f in files)
    return [f.stem if stems[f.stem] == 1 else f.name.replace(".", "_") for f in files]


def named_frames(input_path: Path) -> tuple[Iterator[tuple[str, np.ndarray]], int]:
    """(name, uint8 H×W frame) for every input frame, and how many there are."""
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: no such file or folder")
    if input_path.is_dir() or input_path.suffix.lower() in image_files.IMAGE_SUFFIXES:
        files = image_files.list_images(input_path) if input_path.is_dir() else [input_path]
        # One recording: 16-bit images are scaled by one rule for the whole folder.
        return zip(output_names(files), image_files.read_gray_images(files)), len(files)
    frames = read_frames(input_path).require_complete(skip_bad_frames=False)
    names = [f"{input_path.stem}_{int(index):06d}" for index in frames.index_N]
    return zip(names, frames.images_N), len(names)


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
    flags.DEFINE_string("input", None, "an image file, a folder of images, a video or a DICOM cine", required=True)
    flags.DEFINE_string("output", None, "folder for masks, ROI crops and segmentation.csv", required=True)
    flags.DEFINE_string("checkpoint", None, "segmentation checkpoint; default: the shipped model")
    flags.DEFINE_integer("roi_height", 128, "ROI height in pixels")
    flags.DEFINE_integer("roi_width", 128, "ROI width in pixels")
    flags.DEFINE_integer("batch_size", 16, "frames per network call")


def main(argv: list[str]) -> None:
    args = flags.FLAGS
    count = segment_input(
        Path(args.input), Path(args.output), args.checkpoint, (args.roi_height, args.roi_width), args.batch_size
    )
    print(f"segmented {count} frame(s) into {args.output}")


if __name__ == "__main__":
    cli.run(main, define_flags)
