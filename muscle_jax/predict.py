"""Prediction CLI: a trained run's fold models, as an ensemble, on every frame of a new recording.

    python -m muscle_jax.predict --workdir=runs/gasfastrack \\
        --input=../shared/data/gasfastrack/clips/p6_isokinetic030_01_push_01.mp4 \\
        --output=predictions.csv --plot=predictions.png

`--input` is a video (mp4, avi, …), a DICOM cine (.dcm) or a folder of images (then
`--fps` gives their times). Frames are preprocessed exactly as the run's dataset was built
(`muscle_jax.data.recordings.read_rois`: the layout's calibration crop, or `--crop`, or a
detected image region; then the run's ROI source and size). The CSV has one row per decoded
frame: `frame,time_s,<target>,<target>_std` for each target the run was trained on — the
mean and standard deviation across the fold models, in physical units — and then, unless
`--noarchitecture`, the muscle architecture measured on the same frame
(`muscle_jax.architecture`: architecture_found, the aponeurosis and fascicle angles,
pennation, thickness and fascicle length in pixels). A frame in which the
segmentation stage found no muscle gets NaN predictions (and is counted); undecodable frames
are an error unless `--skip_bad_frames`, which counts them. `--overlay=<mp4>` draws the
predictions over the recording with the renderer `muscle_jax.live` uses (docs/live.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import ml_collections
import numpy as np
from absl import flags
from matplotlib.figure import Figure
from tqdm import tqdm

from muscle_jax import cli
from muscle_jax import ensemble as ensemble_lib
from muscle_jax.architecture.command import architecture_columns
from muscle_jax.data import pipeline, recordings, ultrasound_states
from muscle_jax.data.measured import measured_signals
from muscle_jax.data.readers.dicom import read_dicom_region
from muscle_jax.data.readers.frames import Crop
from muscle_jax.data.readers.media import DICOM_SUFFIXES
from muscle_jax.data.readers.stream import UndecodableFrame, recorded_frames
from muscle_jax.overlay import OverlayRenderer, OverlayVideo, shown_time_s, target_ranges, traces_for
from muscle_jax.streaming.estimators import ensemble_channels, interleave
from muscle_jax.streaming.prepare import FramePreparer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a run's dataset turned frames into model inputs."""

    layout: str
    roi_hw: tuple[int, int]
    roi_source: str
    manual_dir: Path | None


@dataclasses.dataclass(frozen=True)
class Prediction:
    frame_N: np.ndarray
    time_s_N: np.ndarray
    targets: tuple[str, ...]
    mean_NxT: np.ndarray
    std_NxT: np.ndarray
    skipped_frames: int
    no_roi_frames: int
    seconds: dict[str, float]
    crop: Crop | None = None  # the image region the frames were cut to (given, calibrated or detected)

    @property
    def frames_per_second(self) -> float:
        return len(self.frame_N) / max(sum(self.seconds.values()), 1e-9)


def preprocessing_of(config, image_shape: tuple[int, ...]) -> Preprocessing:
    """The layout and ROI source a run's dataset was built with (its builder config, unless the
    run's `config.dataset` overrides `roi_source`); the ROI size is the trained models' input."""
    known = {c.name: c for c in ultrasound_states.UltrasoundStates.BUILDER_CONFIGS}
    name = config.dataset.builder_config
    if name not in known:
        raise ValueError(f"the run's dataset.builder_config {name!r} is not one of {sorted(known)}")
    builder_config = known[name]
    dataset = config.dataset
    roi_hw = (int(image_shape[0]), int(image_shape[1]))
    roi_source = dataset.get("roi_source", None) or builder_config.roi_source
    if roi_source not in recordings.ROI_SOURCES:
        raise ValueError(
            f"the run was trained on {name} with ROIs cut by roi_source {roi_source!r} (the phantom's true "
            "aponeuroses), which a recording does not have; predict with a run trained on recordings, or on a phantom "
            "with --config.dataset.roi_source=segmentation"
        )
    manual_dir = Path(dataset.manual_dir) if dataset.get("manual_dir", "") else None
    return Preprocessing(builder_config.source, roi_hw, roi_source, manual_dir)


def crop_for(input_path: Path, preprocessing: Preprocessing, crop_text: str | None) -> Crop | None:
    """`--crop` when given; else the run's layout calibration; else a DICOM's own region; else None (detect)."""
    if crop_text:
        return Crop.parse(crop_text)
    if preprocessing.layout in recordings.LAYOUTS:
        crop = recordings.layout_calibration(preprocessing.layout, preprocessing.manual_dir)
        if crop is not None:
            return crop
    if input_path.suffix.lower() in DICOM_SUFFIXES:
        return read_dicom_region(input_path)
    return None


def predict_in_batches(ensemble, images_NxHxWxS: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble over the frames, one batch at a time (with a progress bar); mean and std, N x T."""
    means, stds = [], []
    for start in tqdm(range(0, len(images_NxHxWxS), batch_size), desc="predict", unit="batch", leave=False):
        mean_BxT, std_BxT = ensemble.predict(images_NxHxWxS[start : start + batch_size], batch_size=batch_size)
        means.append(mean_BxT)
        stds.append(std_BxT)
    return np.concatenate(means), np.concatenate(stds)


def predict_recording(
    ensemble,
    input_path: Path | str,
    crop_text: str | None = None,
    fps: float | None = None,
    batch_size: int = 128,
    skip_bad_frames: bool = False,
) -> Prediction:
    """Every decoded frame of `input_path` through the fold ensemble (see the module docstring)."""
    input_path = Path(input_path)
    preprocessing = preprocessing_of(ensemble.config, ensemble.image_shape)
    crop = crop_for(input_path, preprocessing, crop_text)
    started = time.perf_counter()
    rois = recordings.read_rois(input_path, preprocessing.roi_hw, preprocessing.roi_source, crop, fps, skip_bad_frames)
    frames = rois.frames.require_complete(skip_bad_frames)
    decoded_at = time.perf_counter()
    # A run trained on stacks of consecutive frames sees each frame with the ones before it.
    images_NxHxWxS = pipeline.stack_sequence(frames.images_N[..., None], ensemble.image_shape[-1])
    # One batch first, so the timing of the rest is the model's, not the compiler's.
    predict_in_batches(ensemble, images_NxHxWxS[:1], batch_size)
    compiled_at = time.perf_counter()
    mean_NxT, std_NxT = predict_in_batches(ensemble, images_NxHxWxS, batch_size)
    predicted_at = time.perf_counter()
    no_roi_N = ~rois.found_N
    mean_NxT, std_NxT = np.where(no_roi_N[:, None], np.nan, mean_NxT), np.where(no_roi_N[:, None], np.nan, std_NxT)
    seconds = {"decode_and_roi": decoded_at - started, "model": predicted_at - compiled_at}
    log.info("compiling the ensemble took %.1f s (not counted in frames/s)", compiled_at - decoded_at)
    return Prediction(
        frames.index_N, frames.time_s_N, tuple(ensemble.targets), mean_NxT, std_NxT,
        frames.missing, int(no_roi_N.sum()), seconds, rois.crop,
    )


def write_csv(path: Path | str, prediction: Prediction, extra_columns: dict[str, np.ndarray] | None = None) -> None:
    """`frame,time_s,<target>,<target>_std,…` and then `extra_columns` (one value per row), one
    row per decoded frame."""
    columns = {"frame": prediction.frame_N, "time_s": prediction.time_s_N}
    for t, target in enumerate(prediction.targets):
        columns[target] = prediction.mean_NxT[:, t]
        columns[f"{target}_std"] = prediction.std_NxT[:, t]
    columns.update(extra_columns or {})
    lines = [",".join(columns)]
    for n in range(len(prediction.frame_N)):
        lines.append(",".join([str(int(prediction.frame_N[n]))] + [f"{float(v[n]):.6g}" for v in list(columns.values())[1:]]))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


def plot(path: Path | str, prediction: Prediction, title: str) -> None:
    """One panel per target: the ensemble mean with a ±1 standard deviation band over time."""
    timed = np.all(np.isfinite(prediction.time_s_N))
    x_N = prediction.time_s_N if timed else prediction.frame_N
    figure = Figure(figsize=(8, 2.4 * len(prediction.targets)))
    axes = figure.subplots(len(prediction.targets), 1, sharex=True, squeeze=False)
    for t, (target, axis) in enumerate(zip(prediction.targets, axes[:, 0])):
        mean_N, std_N = prediction.mean_NxT[:, t], prediction.std_NxT[:, t]
        axis.fill_between(x_N, mean_N - std_N, mean_N + std_N, alpha=0.3, label="±1 sd across folds")
        axis.plot(x_N, mean_N, lw=1.2, label="ensemble mean")
        axis.set_ylabel(target)
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)" if timed else "frame")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def write_overlay(path: Path | str, ensemble, input_path: Path | str, prediction: Prediction, fps: float | None = None,
                  height: int = 480, window_s: float = 5.0) -> int:
    """The prediction drawn over its recording by the renderer `live --overlay` uses (the ROI
    outline and aponeurosis lines of the run's ROI source, traces with ±1 sd bands, measured
    signals when the recording is a trial of the run's layout): one video frame per predicted
    frame. Returns the number of video frames."""
    preprocessing = preprocessing_of(ensemble.config, ensemble.image_shape)
    preparer = FramePreparer(preprocessing.roi_hw, preprocessing.roi_source, ensemble.image_shape[-1], prediction.crop,
                             str(input_path), time.monotonic)
    channels = ensemble_channels(prediction.targets)
    traces = traces_for(channels, target_ranges(prediction.targets, ensemble.stats.mean_KxT, ensemble.stats.std_KxT))
    values_NxC = interleave(prediction.mean_NxT, prediction.std_NxT)
    row_of = {int(frame): n for n, frame in enumerate(prediction.frame_N)}
    steps_s = np.diff(prediction.time_s_N)
    timed = len(steps_s) and np.all(np.isfinite(steps_s)) and np.median(steps_s) > 0
    frame_rate = 1.0 / float(np.median(steps_s)) if timed else 30.0
    declared = len(prediction.frame_N) + prediction.skipped_frames
    measured = measured_signals(input_path, preprocessing.layout, preprocessing.manual_dir, prediction.targets, declared)
    renderer, video = None, None
    try:
        for item in recorded_frames(input_path, fps):
            if isinstance(item, UndecodableFrame) or item.index not in row_of:
                continue
            prepared = preparer.prepare(item)
            if renderer is None:
                renderer = OverlayRenderer(item.gray_HxW.shape, traces, height, window_s)
                video = OverlayVideo(path, renderer.width, renderer.height, frame_rate)
            signals = measured.at([item.index], [item.time_s]) if measured else {}
            caption = f"frame {item.index}  {item.time_s:.2f} s  {Path(input_path).name}"
            shown_s = shown_time_s(item.time_s, item.index, frame_rate)
            rgb = renderer.render(item.gray_HxW, prepared.lines, shown_s, values_NxC[row_of[item.index]],
                                  {t: float(v[0]) for t, v in signals.items()}, caption)
            video.write(rgb, shown_s)
    finally:
        if video is not None:
            video.close()
    return video.frames if video is not None else 0


def run(workdir: str | Path, input_path: str | Path, output: str | Path, plot_path: str | Path | None = None,
        crop_text: str | None = None, fps: float | None = None, batch_size: int = 128, skip_bad_frames: bool = False,
        architecture: bool = True, overlay_path: str | Path | None = None, ensemble=None) -> str:
    """The command's work: predicts `input_path` with the run in `workdir` (or the `ensemble`
    already loaded from it), with the muscle's architecture measured on every frame beside the
    states (`architecture`), writes the CSV (and the plot, and the overlay video); returns the
    summary it prints."""
    if ensemble is None:
        run = ensemble_lib.read_run(workdir)
        preprocessing_of(ml_collections.ConfigDict(run["config"]), tuple(run["image_shape"]))  # refused before loading
        ensemble = ensemble_lib.load(workdir)
    prediction = predict_recording(ensemble, input_path, crop_text, fps, batch_size, skip_bad_frames)
    extra, architecture_line = None, []
    if architecture:
        started = time.perf_counter()
        # The image region the states were read from (given, calibrated or detected): one region per recording.
        extra = architecture_columns(Path(input_path), prediction.crop, prediction.frame_N)
        architecture_line = [f"architecture measured on {int(extra['architecture_found'].sum())}/{len(prediction.frame_N)} "
                             f"frames in {time.perf_counter() - started:.1f} s"]
    write_csv(output, prediction, extra)
    if plot_path:
        plot(plot_path, prediction, Path(input_path).name)
    if overlay_path:
        frames = write_overlay(overlay_path, ensemble, input_path, prediction, fps)
        architecture_line.append(f"overlay: {frames} frames → {overlay_path}")
    count, seconds = len(prediction.frame_N), prediction.seconds
    lines = [
        f"{count} frames → {output}: {prediction.frames_per_second:.1f} frames/s overall "
        f"(decode + ROI {count / max(seconds['decode_and_roi'], 1e-9):.1f} frames/s, "
        f"model {count / max(seconds['model'], 1e-9):.1f} frames/s); "
        f"skipped {prediction.skipped_frames} undecodable, {prediction.no_roi_frames} without an ROI (NaN rows)"
    ]
    steps_s = np.diff(prediction.time_s_N)
    if len(steps_s) and np.all(np.isfinite(steps_s)) and np.median(steps_s) > 0:
        recorded_fps = 1.0 / float(np.median(steps_s))
        lines.append(f"recorded at {recorded_fps:.1f} frames/s: {prediction.frames_per_second / recorded_fps:.2f}× real time")
    return "\n".join(lines + architecture_line)


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A trained run (muscle_jax.main's --workdir).")
    flags.DEFINE_string("input", None, "A video, a DICOM cine or a folder of images.")
    flags.DEFINE_string("output", None, "CSV to write: frame,time_s,<target>,<target>_std.")
    flags.DEFINE_string("plot", None, "Optional PNG of the predictions over time.")
    flags.DEFINE_string("overlay", None, "Optional mp4: every frame with its ROI and traces of the predictions (as live draws it).")
    flags.DEFINE_string("crop", None, "Image region 'x,y,w,h' (0-based px); default: the run's calibration, else detected.")
    flags.DEFINE_float("fps", None, "Frame rate of a folder of images (for time_s).")
    flags.DEFINE_integer("batch_size", 128, "Frames per model call.")
    flags.DEFINE_boolean("skip_bad_frames", False, "Leave undecodable frames out (counted) instead of failing.")
    flags.DEFINE_boolean("architecture", True,
                         "Also measure muscle architecture on every frame (muscle_jax.architecture) and add its columns.")
    flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv: list[str]) -> None:
    args = flags.FLAGS
    print(run(args.workdir, args.input, args.output, args.plot, args.crop, args.fps, args.batch_size,
              args.skip_bad_frames, args.architecture, args.overlay))


if __name__ == "__main__":
    cli.run(main, define_flags)
