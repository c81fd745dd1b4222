"""Frame-to-frame noise of the architecture stage on the GasFasTrack clips, with and without smoothing.

    python experiments/architecture_noise.py [--clips=all] [--json=docs/figures/architecture_noise.json]

Every clip (../shared/data/gasfastrack/clips) is measured frame by frame, with the image
region found from the clip (not the calibration's rectangle) and the calibration's scale
(0.0883 mm per pixel). Two measures of noise, per quantity, raw and after the stage's Kalman
smoother (the CLI's --smooth):
  frame-to-frame   RMS difference between consecutive decoded frames where both were found
                   (it also holds the muscle's true motion between frames: an upper bound);
  around the trend RMS difference from a running median over 0.2 s (12 frames at 61 fps),
                   the part of the signal faster than any contraction in these clips.
The screen capture runs at 61 frames/s, faster than the scanner's 21, so about two in three
consecutive decoded frames show the same scanner frame again under new compression noise.
Beside them: the RMS difference between smoothed and raw values (how far smoothing moves the
measurements) and the range each quantity covers in the clips.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from absl import flags

from muscle_jax import cli
from muscle_jax.architecture import command, measure
from muscle_jax.architecture.region import find_clip_region
from muscle_jax.data.readers.media import read_frames
from muscle_jax.data.readers.signals import read_gasfastrack_calibration
from muscle_jax.data.recordings import SHARED_DATA_DIR

GASFASTRACK = SHARED_DATA_DIR / "gasfastrack"
QUANTITIES = ("fascicle_angle_deg", "pennation_deg", "thickness_px", "fascicle_length_px")


def define_flags() -> None:
    flags.DEFINE_string("clips", "all", "'all' or comma-separated clip names (without .mp4)")
    flags.DEFINE_string("json", "docs/figures/architecture_noise.json", "where to write every figure")


TREND_S = 0.2


def around_trend(time_s_N: np.ndarray, values_N: np.ndarray) -> np.ndarray:
    """Each value minus the median of the values within ±TREND_S/2 of it (NaN where not found)."""
    out = np.full(len(values_N), np.nan)
    for k, t in enumerate(time_s_N):
        window = values_N[np.abs(time_s_N - t) <= TREND_S / 2]
        if np.isfinite(values_N[k]) and np.isfinite(window).sum() >= 3:
            out[k] = values_N[k] - np.nanmedian(window)
    return out


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    clips = sorted((GASFASTRACK / "clips").glob("*.mp4"))
    if args.clips != "all":
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c.stem in wanted]
    _, mm_per_px = read_gasfastrack_calibration(GASFASTRACK / "p6_params.mat")
    config = measure.default_config()
    steps = {(q, kind): [] for q in QUANTITIES for kind in ("raw", "smoothed")}
    residuals = {(q, kind): [] for q in QUANTITIES for kind in ("raw", "smoothed")}
    moved = {q: [] for q in QUANTITIES}
    values = {q: [] for q in QUANTITIES}
    counts = {"frames": 0, "found": 0, "clips": len(clips)}
    started = time.perf_counter()
    for clip in clips:
        decoded = read_frames(clip).require_complete(skip_bad_frames=False)
        frames = decoded.images_N
        crop = find_clip_region(frames[np.linspace(0, len(frames) - 1, min(64, len(frames))).round().astype(int)])
        results = []
        for start in range(0, len(frames), config.batch_size):
            chunk = list(frames[start : start + config.batch_size])
            results += measure.measure_frames(chunk, [crop] * len(chunk), config)
        smoothed = command.smoothed_columns(decoded.time_s_N, results, mm_per_px)
        counts["frames"] += len(frames)
        counts["found"] += sum(r.found for r in results)
        for quantity in QUANTITIES:
            raw = np.array([getattr(r, quantity) for r in results])
            smooth = smoothed[f"{quantity}_smoothed"]
            # Lengths and thickness as % of the clip's median, so clips of different size pool.
            scale = 100.0 / np.nanmedian(raw) if quantity.endswith("_px") else 1.0
            for kind, series in (("raw", raw), ("smoothed", smooth)):
                steps[(quantity, kind)] += list(np.diff(series) * scale)
                residuals[(quantity, kind)] += list(around_trend(decoded.time_s_N, series) * scale)
            moved[quantity] += list((smooth - raw) * scale)
            values[quantity] += list(raw * (mm_per_px if quantity.endswith("_px") else 1.0))
        print(f"{clip.stem}: {len(frames)} frames, {sum(r.found for r in results)} found, region {crop}")
    seconds = time.perf_counter() - started
    rms = lambda v: float(np.sqrt(np.nanmean(np.square(v))))  # noqa: E731
    report = {"counts": counts, "seconds": round(seconds, 1), "mm_per_px": mm_per_px, "quantities": {}}
    lines = ["| quantity | frame-to-frame RMS, raw | smoothed | around the 0.2 s trend, raw | smoothed | "
             "smoothed − raw, RMS | range over the clips (1st–99th percentile) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for quantity in QUANTITIES:
        unit = "%" if quantity.endswith("_px") else "°"
        raw, smooth, shift = rms(steps[(quantity, "raw")]), rms(steps[(quantity, "smoothed")]), rms(moved[quantity])
        raw_trend, smooth_trend = rms(residuals[(quantity, "raw")]), rms(residuals[(quantity, "smoothed")])
        low, high = np.nanpercentile(values[quantity], [1, 99])
        span_unit = "mm" if quantity.endswith("_px") else "°"
        report["quantities"][quantity] = {
            "frame_to_frame_raw_rms": raw, "frame_to_frame_smoothed_rms": smooth, "trend_raw_rms": raw_trend,
            "trend_smoothed_rms": smooth_trend, "smoothed_minus_raw_rms": shift, "unit": unit,
            "p1": float(low), "p99": float(high), "range_unit": span_unit}
        lines.append(f"| {quantity.replace('_px', '')} ({unit}) | {raw:.2f} | {smooth:.2f} | {raw_trend:.2f} | "
                     f"{smooth_trend:.2f} | {shift:.2f} | {low:.1f}–{high:.1f} {span_unit} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print("\n".join(lines))
    print(f"{counts}; {seconds:.0f} s; wrote {args.json}")


if __name__ == "__main__":
    cli.run(main, define_flags)
