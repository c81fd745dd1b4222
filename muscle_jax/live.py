"""Live CLI: a trained run's fold ensemble on a scanner feed, frame by frame, as the frames arrive.

    python -m muscle_jax.live --workdir=runs/gasfastrack --input=/dev/video0 --lsl=muscle --output=live.csv
    python experiments/live_play.py clip.mp4 | python -m muscle_jax.live --workdir=runs/gasfastrack --input=- --lsl=muscle
    python -m muscle_jax.live --workdir=runs/gasfastrack --input=clip.mp4 --realtime --overlay=live.mp4

`--input` is a capture device (`/dev/video0`, through FFmpeg's v4l2 input; `--input_format` and
`--input_options` reach any other FFmpeg input, e.g. `x11grab` for a screen grabber), `-` for a
stream on standard input (a streamable container: MPEG-TS, Matroska, NUT), a file a scanner is
still writing (`--growing`), or a finished file (`--realtime` plays it at its own frame rate, so a
recording stands in for a scanner). Frames are prepared exactly as `predict` prepares them (the
run's calibration crop, or `--crop`, else a region detected from the first `--detect_frames` frames
and held; the run's ROI source and size; stacks of the frames before each one), estimated by the
fold ensemble, and written as they are ready: the CSV line by line (flushed), one LSL sample per
frame (`--lsl_wait_s` first waits for a consumer such as LabRecorder), one overlay video frame per
estimated frame. The session ends at the end of the source or on Ctrl-C (exit status 130), with
every output closed, and prints its latency summary. docs/live.md has the design, the drop policy
and the measured latency.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Sequence

import pylsl
from absl import flags

from muscle_jax import cli, predict
from muscle_jax import ensemble as ensemble_lib
from muscle_jax.data.measured import measured_signals
from muscle_jax.data.readers.frames import Crop
from muscle_jax.data.readers.stream import SourceSpec, kind_of, open_source
from muscle_jax.overlay import OverlayRenderer, OverlayVideo, OverlayWorker, target_ranges, traces_for
from muscle_jax.streaming import session
from muscle_jax.streaming.estimators import ArchitectureEstimator, EnsembleEstimator, FrameEstimator
from muscle_jax.streaming.prepare import FramePreparer
from muscle_jax.streaming.sinks import CsvSink, LslSink

log = logging.getLogger(__name__)
FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A trained run (muscle_jax.main's --workdir).")
    flags.DEFINE_string("input", None, "A capture device (/dev/video0), '-' for standard input, or a video file.")
    flags.DEFINE_string("output", None, "CSV written row by row: frame,time_s,<target>,<target>_std,…,status,capture_s,ready_s,latency_ms.")
    flags.DEFINE_string("lsl", None, "Name of the LSL stream to publish (one sample per frame).")
    flags.DEFINE_float("lsl_wait_s", 0.0, "Wait up to this long for an LSL consumer (e.g. LabRecorder) before the first frame.")
    flags.DEFINE_string("overlay", None, "An mp4 of the frames with their ROI and live traces of the estimates.")
    flags.DEFINE_boolean("realtime", False, "Play a finished file at its own frame rate, as a scanner would deliver it.")
    flags.DEFINE_boolean("growing", False, "The input file is still being written: keep reading as it grows.")
    flags.DEFINE_float("follow_timeout_s", 2.0, "A growing file has ended once it has not grown for this long (s).")
    flags.DEFINE_string("crop", None, "Image region 'x,y,w,h' (0-based px); default: the run's calibration, else detected.")
    flags.DEFINE_integer("detect_frames", 60, "Without a calibration: detect the image region from this many first frames.")
    flags.DEFINE_string("input_format", None, "FFmpeg input format (default: v4l2 for devices, probed otherwise).")
    flags.DEFINE_string("input_options", "", "FFmpeg input options 'key=value,key=value' (e.g. video_size=1280x720,framerate=60).")
    flags.DEFINE_integer("queue", 4, "Frames that may wait for the estimator (estimated together); beyond it the oldest is dropped.")
    flags.DEFINE_boolean("skip_bad_frames", False, "Go on past undecodable frames (each written with status 'undecodable').")
    flags.DEFINE_integer("overlay_height", 480, "Height of the overlay video (px).")
    flags.DEFINE_float("overlay_window_s", 5.0, "Seconds of history in the overlay's traces.")
    flags.DEFINE_string("summary_json", None, "Also write the summary as JSON here.")
    flags.DEFINE_boolean("architecture", False,
                         "Also measure the muscle architecture of every frame (muscle_jax.architecture). It runs at about "
                         "60 frames/s alone on a 2-core CPU, so beside the states a 61 fps feed loses frames to the drop policy.")
    flags.mark_flags_as_required(["workdir", "input"])


def parse_options(text: str) -> dict[str, str]:
    """'key=value,key=value' → dict; an error naming the flag for anything else."""
    options = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"--input_options: expected 'key=value' items separated by commas, got {part!r}")
        options[key] = value
    return options


def check_run_fits_live(workdir: str, ensemble, preprocessing: predict.Preprocessing) -> int:
    """The run's frame stack (S); an error naming the run when its config and models disagree.
    (A run whose ROIs a live feed cannot cut is refused earlier, by `predict.preprocessing_of`.)"""
    frame_stack = int(ensemble.config.dataset.get("frame_stack", 1))
    if frame_stack != ensemble.image_shape[-1]:
        raise ValueError(
            f"{workdir}/run.json: dataset.frame_stack={frame_stack} but the models take {ensemble.image_shape[-1]} "
            "stacked frame(s): the run's config and its models disagree"
        )
    return frame_stack


@dataclasses.dataclass(frozen=True)
class LiveResult:
    """How a session ended (`session.Outcome`) and what the overlay holds."""

    outcome: session.Outcome
    overlay_frames: int | None
    overlay_not_rendered: int | None


def check_crop_fits(spec: SourceSpec, frame_hw: tuple[int, int], crop: Crop | None, origin: str, workdir: str) -> None:
    """An error naming the source when its frames cannot hold the image region the run expects."""
    if crop is None or not frame_hw[0]:
        return  # detected from the frames, or the stream does not declare its size: crop.apply checks each frame
    if crop.x + crop.w > frame_hw[1] or crop.y + crop.h > frame_hw[0]:
        raise ValueError(
            f"{spec.name}: its {frame_hw[1]}x{frame_hw[0]} frames do not hold the image region x={crop.x} y={crop.y} "
            f"w={crop.w} h={crop.h} ({origin}); "
            + ("give a --crop inside the frame" if origin == "--crop" else
               f"the input is not the kind of recording {workdir} was trained on (pass --crop=x,y,w,h)")
        )


def run_live(
    ensemble,
    workdir: str,
    spec: SourceSpec,
    output: str | None = None,
    lsl: str | None = None,
    overlay: str | None = None,
    lsl_wait_s: float = 0.0,
    crop_text: str | None = None,
    detect_frames: int = 60,
    queue: int = 4,
    skip_bad_frames: bool = False,
    overlay_height: int = 480,
    overlay_window_s: float = 5.0,
    stop: threading.Event | None = None,
    announce=print,
    more_estimators: Sequence[FrameEstimator] = (),
    architecture: bool = False,
) -> LiveResult:
    """One live session of `ensemble` (the run in `workdir`) on `spec`, to the outputs given (the
    module docstring); `stop` ends it early. `more_estimators` add their columns after the
    ensemble's; `architecture` adds the muscle architecture stage's (docs/live.md). Errors before the first frame
    are raised; an error during the session is returned in the outcome, after every output was
    closed."""
    if not (output or lsl or overlay):
        raise ValueError("nothing to write: give --output, --lsl and/or --overlay")
    preprocessing = predict.preprocessing_of(ensemble.config, ensemble.image_shape)
    frame_stack = check_run_fits_live(workdir, ensemble, preprocessing)
    crop = predict.crop_for(Path(spec.input), preprocessing, crop_text)
    estimators = [EnsembleEstimator(ensemble), *more_estimators]
    if architecture:
        estimators.append(ArchitectureEstimator(region=crop))
    for estimator in estimators:
        estimator.warm_up(queue)  # compiled before the first frame, not on it
    channels = session.channels_of(estimators)
    clock = pylsl.local_clock
    stop = stop or threading.Event()
    announce(f"live: waiting for {spec.name}")
    source = open_source(spec, clock, stop)
    sinks, worker = [], None
    try:
        frame_hw, frame_rate = source.frame_hw, source.frame_rate
        check_crop_fits(spec, frame_hw, crop, "--crop" if crop_text else f"the run's {preprocessing.layout} calibration", workdir)
        preparer = FramePreparer(preprocessing.roi_hw, preprocessing.roi_source, frame_stack, crop, spec.name, clock,
                                 detect_frames)
        if output:
            sinks.append(CsvSink(output, channels))
        if lsl:
            provenance = {"workdir": str(Path(workdir).resolve()), "input": spec.name, "targets": " ".join(ensemble.targets),
                          "folds": ensemble.num_folds, "roi_source": preprocessing.roi_source, "frame_stack": frame_stack}
            sinks.append(LslSink(lsl, channels, frame_rate, f"muscle_jax:{lsl}:{spec.name}", provenance))
            if lsl_wait_s and not sinks[-1].wait_for_consumer(lsl_wait_s):
                log.warning("no LSL consumer connected to %r within %.1f s; streaming anyway", lsl, lsl_wait_s)
        measured = None
        if overlay:
            ranges = target_ranges(ensemble.targets, ensemble.stats.mean_KxT, ensemble.stats.std_KxT)
            renderer = OverlayRenderer(frame_hw, traces_for(channels, ranges), overlay_height, overlay_window_s)
            worker = OverlayWorker(renderer, OverlayVideo(overlay, renderer.width, renderer.height, frame_rate or 30.0))
            if spec.kind == "file":
                measured = measured_signals(spec.input, preprocessing.layout, preprocessing.manual_dir, ensemble.targets,
                                            source.frames_declared)
    except BaseException:
        session.close_all([*sinks, *([worker] if worker else []), source], None)
        raise
    announce(f"live: {spec.name} ({spec.kind}{', real time' if spec.realtime else ''}, {frame_hw[1]}x{frame_hw[0]}, "
             f"{frame_rate or float('nan'):.1f} frames/s) → {', '.join(c.name for c in channels)}")
    outcome = session.run(source, preparer, estimators, sinks, stop, clock, queue, skip_bad_frames, worker, measured)
    return LiveResult(outcome, worker.video.frames if worker else None, worker.not_rendered if worker else None)


def main(argv: list[str]) -> None:
    del argv
    spec = SourceSpec(FLAGS.input, kind_of(FLAGS.input, FLAGS.growing), FLAGS.realtime, FLAGS.input_format,
                      parse_options(FLAGS.input_options), FLAGS.follow_timeout_s)
    ensemble = ensemble_lib.load(FLAGS.workdir)
    stop = threading.Event()
    # Ctrl-C asks the session to stop and close its outputs; a second Ctrl-C interrupts at once.
    previous = signal.signal(signal.SIGINT, lambda *_: (stop.set(), signal.signal(signal.SIGINT, signal.default_int_handler)))
    try:
        result = run_live(
            ensemble, FLAGS.workdir, spec, FLAGS.output, FLAGS.lsl, FLAGS.overlay, FLAGS.lsl_wait_s, FLAGS.crop, FLAGS.detect_frames,
            FLAGS.queue, FLAGS.skip_bad_frames, FLAGS.overlay_height, FLAGS.overlay_window_s, stop,
            announce=lambda line: print(line, flush=True), architecture=FLAGS.architecture,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = result.outcome.summary
    for line in summary.lines():
        print(line, flush=True)
    if result.overlay_frames is not None:
        print(f"overlay: {result.overlay_frames} frames → {FLAGS.overlay}"
              + (f"; {result.overlay_not_rendered} not rendered (the renderer fell behind)" if result.overlay_not_rendered else ""),
              flush=True)
    if FLAGS.summary_json:
        Path(FLAGS.summary_json).write_text(json.dumps(
            {**summary.to_json(), "overlay_frames": result.overlay_frames, "overlay_not_rendered": result.overlay_not_rendered},
            indent=2) + "\n")
    if result.outcome.error is not None:
        raise result.outcome.error
    if summary.stopped_by == "an interrupt":
        raise KeyboardInterrupt


if __name__ == "__main__":
    cli.run(main, define_flags)
