"""CPU throughput of the architecture stage beside the segmentation stage, side by side in one process.

    python experiments/architecture_throughput.py [--repeats=5] [--json=docs/figures/architecture_throughput.json]

On the 16 real DL_Track frames of 660×556 pixels (the commonest size; as
experiments/segmentation_throughput.py), each the median of `repeats` timed runs after one
warm-up run (compilation), in frames per second:
  segmentation     `segmentation.segment_frames` end to end (U-Net, curves, 128×128 ROI)
  architecture     `architecture.measure_frames` end to end: the image region found in every
                   frame, aponeuroses, fascicles, thickness (a folder of images)
  architecture, region given   the same with the region known (a clip: found once per clip)
  region alone     `region.find_image_region` on every frame
The CPU model (lscpu) and the load average before and after are printed beside them,
because the machine may be shared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import flags

from muscle_jax import cli
from muscle_jax.architecture import measure
from muscle_jax.architecture.region import find_image_region
from muscle_jax.data.readers.images import read_gray_image
from muscle_jax.segmentation import dl_track, segment_frames
from muscle_jax.segmentation.inference import checkpoint_metrics


def define_flags() -> None:
    flags.DEFINE_integer("repeats", 5, "timed runs per stage")
    flags.DEFINE_string("json", "docs/figures/architecture_throughput.json", "where to write the figures")


def frames_per_second(run: Callable[[], object], num_frames: int, repeats: int) -> float:
    run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return num_frames / statistics.median(seconds)


def cpu_model() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "unknown")


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    data_dir = checkpoint_metrics()["config"]["data"]["dl_track_dir"]
    pairs = [p for p in dl_track.list_pairs(data_dir) if p.size_wh == (660, 556)][:16]
    frames = [read_gray_image(p.image_path) for p in pairs]
    stack = np.stack(frames)
    regions = [find_image_region(frame) for frame in frames]
    results = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "frames": len(frames), "frame_hw": list(stack.shape[1:]),
               "load_average_before": os.getloadavg()[0]}
    results["segmentation_fps"] = frames_per_second(lambda: segment_frames(stack, (128, 128), batch_size=16), 16, args.repeats)
    results["architecture_fps"] = frames_per_second(lambda: measure.measure_frames(frames), 16, args.repeats)
    results["architecture_region_given_fps"] = frames_per_second(
        lambda: measure.measure_frames(frames, regions), 16, args.repeats)
    results["region_alone_fps"] = frames_per_second(lambda: [find_image_region(f) for f in frames], 16, args.repeats)
    results["architecture_found"] = sum(r.found for r in measure.measure_frames(frames))
    results["load_average_after"] = os.getloadavg()[0]
    results["architecture_over_segmentation"] = results["architecture_fps"] / results["segmentation_fps"]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    cli.run(main, define_flags)
