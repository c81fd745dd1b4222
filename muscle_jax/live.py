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
frame, one overlay video frame per estimated frame. The session ends at the end of the source or on
Ctrl-C, and prints its latency summary. docs/live.md has the design, the drop policy and the
measured latency.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

import numpy as np
import pylsl
from absl import flags

from muscle_jax import cli, predict
from muscle_jax.data import recordings
from muscle_jax.data.measured import measured_signals
from muscle_jax.data.readers.stream import SourceSpec, kind_of, open_source
from muscle_jax.overlay import OverlayRenderer, OverlayVideo, OverlayWorker, target_ranges, traces_for
from muscle_jax.streaming import session
from muscle_jax.streaming.estimators import EnsembleEstimator
from muscle_jax.streaming.prepare import FramePreparer
from muscle_jax.streaming.sinks import CsvSink, LslSink

log = logging.getLogger(__name__)
FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A trained run (muscle_jax.main's --workdir).")
    flags.DEFINE_string("input", None, "A capture device (/dev/video0), '-' for standard input, or a video file.")
    flags.DEFINE_string("output", None, "CSV written row by row: frame,time_s,<target>,<target>_std,…,status,capture_s,ready_s,latency_ms.")
    flags.DEFINE_string("lsl", None, "Name of the LSL stream to publish (one sample per frame).")
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
    """The run's frame stack (S); an error naming the run when live frames cannot be prepared as
    its dataset was."""
    if preprocessing.roi_source not in recordings.ROI_SOURCES:
        raise ValueError(
            f"{workdir}: the run was trained on ROIs from roi_source={preprocessing.roi_source!r} ({preprocessing.layout} data); "
            f"a live feed can only be prepared with {' or '.join(recordings.ROI_SOURCES)} ROIs"
        )
    frame_stack = int(ensemble.config.dataset.get("frame_stack", 1))
    if frame_stack != ensemble.image_shape[-1]:
        raise ValueError(
            f"{workdir}/run.json: dataset.frame_stack={frame_stack} but the models take {ensemble.image_shape[-1]} "
            "stacked frame(s): the run's config and its models disagree"
        )
    return frame_stack


def main(argv: list[str]) -> None:
    del argv
    if not (FLAGS.output or FLAGS.lsl or FLAGS.overlay):
        raise ValueError("nothing to write: give --output, --lsl and/or --overlay")
    spec = SourceSpec(FLAGS.input, kind_of(FLAGS.input, FLAGS.growing), FLAGS.realtime, FLAGS.input_format,
                      parse_options(FLAGS.input_options), FLAGS.follow_timeout_s)
    from muscle_jax import ensemble as ensemble_lib

    ensemble = ensemble_lib.load(FLAGS.workdir)
    preprocessing = predict.preprocessing_of(ensemble.config, ensemble.image_shape)
    frame_stack = check_run_fits_live(FLAGS.workdir, ensemble, preprocessing)
    crop = predict.crop_for(Path(FLAGS.input), preprocessing, FLAGS.crop)
    estimators = [EnsembleEstimator(ensemble)]
    for estimator in estimators:
        estimator.warm_up(FLAGS.queue)  # compiled before the first frame, not on it
    channels = session.channels_of(estimators)
    clock = pylsl.local_clock
    stop = threading.Event()
    source = open_source(spec, clock, stop)
    frame_hw = source.frame_hw
    if crop is not None and frame_hw[0] and (crop.x + crop.w > frame_hw[1] or crop.y + crop.h > frame_hw[0]):
        source.close()
        origin = "--crop" if FLAGS.crop else f"the run's {preprocessing.layout} calibration"
        raise ValueError(
            f"{spec.name}: its {frame_hw[1]}x{frame_hw[0]} frames do not hold the image region x={crop.x} y={crop.y} "
            f"w={crop.w} h={crop.h} ({origin}); the input is not the kind of recording {FLAGS.workdir} was trained on "
            "(pass --crop)"
        )
    preparer = FramePreparer(preprocessing.roi_hw, preprocessing.roi_source, frame_stack, crop, spec.name, clock,
                             FLAGS.detect_frames)
    frame_rate = source.frame_rate
    sinks, overlay = [], None
    try:
        if FLAGS.output:
            sinks.append(CsvSink(FLAGS.output, channels))
        if FLAGS.lsl:
            provenance = {"workdir": str(Path(FLAGS.workdir).resolve()), "input": spec.name, "targets": " ".join(ensemble.targets),
                          "folds": ensemble.num_folds, "roi_source": preprocessing.roi_source, "frame_stack": frame_stack}
            sinks.append(LslSink(FLAGS.lsl, channels, frame_rate, f"muscle_jax:{FLAGS.lsl}:{spec.name}", provenance))
        if FLAGS.overlay:
            ranges = target_ranges(ensemble.targets, ensemble.stats.mean_KxT, ensemble.stats.std_KxT)
            renderer = OverlayRenderer(frame_hw, traces_for(channels, ranges), FLAGS.overlay_height, FLAGS.overlay_window_s)
            video = OverlayVideo(FLAGS.overlay, renderer.width, renderer.height, frame_rate or 30.0)
            overlay = OverlayWorker(renderer, video)
    except BaseException:
        for opened in [*sinks, *([overlay] if overlay else [])]:
            opened.close()
        source.close()
        raise
    measured = None
    if spec.kind == "file" and overlay is not None:
        measured = measured_signals(FLAGS.input, preprocessing.layout, preprocessing.manual_dir, ensemble.targets,
                                    source.frames_declared)
    print(f"live: {spec.name} ({spec.kind}{', real time' if spec.realtime else ''}, {frame_hw[1]}x{frame_hw[0]}, "
          f"{frame_rate or float('nan'):.1f} frames/s) → {', '.join(c.name for c in channels)}", flush=True)
    # Ctrl-C asks the session to stop and close its outputs; a second Ctrl-C interrupts at once.
    previous = signal.signal(signal.SIGINT, lambda *_: (stop.set(), signal.signal(signal.SIGINT, signal.default_int_handler)))
    try:
        outcome = session.run(source, preparer, estimators, sinks, stop, clock, FLAGS.queue, FLAGS.skip_bad_frames,
                              overlay, measured)
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = outcome.summary
    for line in summary.lines():
        print(line, flush=True)
    if overlay is not None:
        print(f"overlay: {overlay.video.frames} frames → {FLAGS.overlay}"
              + (f"; {overlay.not_rendered} not rendered (the renderer fell behind)" if overlay.not_rendered else ""), flush=True)
    if FLAGS.summary_json:
        Path(FLAGS.summary_json).write_text(json.dumps(
            {**summary.to_json(), "overlay_frames": overlay.video.frames if overlay else None,
             "overlay_not_rendered": overlay.not_rendered if overlay else None}, indent=2, default=_json_number) + "\n")
    if outcome.error is not None:
        raise outcome.error
    if summary.stopped_by == "an interrupt":
        raise KeyboardInterrupt


def _json_number(value):
    return float(value) if isinstance(value, np.floating) else str(value)


if __name__ == "__main__":
    cli.run(main, define_flags)
