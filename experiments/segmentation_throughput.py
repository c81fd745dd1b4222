"""CPU throughput of the segmentation stage (docs/segmentation.md), all stages in one process.

    python experiments/segmentation_throughput.py [--checkpoint=...] [--repeats=5]

Stages, each timed on the same real DL_Track frames (660×556, the commonest size):
  network        the U-Net alone on frames already at the working resolution (batch 1 and 16)
  probabilities  resize to working resolution + U-Net + resize back to the frame size
  segment_frames the public API end to end: probabilities, threshold, curve fit, ROI crop
Each is the median over `repeats` timed runs after one warm-up (compilation) run; the load
average is printed beside them because the machine may be shared.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from muscle_jax import cli
from muscle_jax.segmentation import dl_track, segment_frames
from muscle_jax.data.readers.images import read_gray_image
from muscle_jax.segmentation.inference import cached_model, checkpoint_metrics
from muscle_jax.segmentation.network import SHIPPED_CHECKPOINT, predict_probabilities_NxHxW


def define_flags() -> None:
    flags.DEFINE_string("checkpoint", str(SHIPPED_CHECKPOINT), "segmentation checkpoint")
    flags.DEFINE_integer("repeats", 5, "timed runs per stage")


def frames_per_second(run: Callable[[], object], num_frames: int, repeats: int) -> float:
    jax.block_until_ready(run())
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        seconds.append(time.perf_counter() - start)
    return num_frames / statistics.median(seconds)


def main(argv: list[str]) -> None:
    del argv
    checkpoint, repeats = flags.FLAGS.checkpoint, flags.FLAGS.repeats
    model, params, input_hw, _ = cached_model(checkpoint)
    data_dir = checkpoint_metrics(checkpoint)["config"]["data"]["dl_track_dir"]
    pairs = [p for p in dl_track.list_pairs(data_dir) if p.size_wh == (660, 556)][:16]
    full_frames = np.stack([read_gray_image(p.image_path) for p in pairs])
    apply = jax.jit(model.apply)
    results = {"cpu_count": os.cpu_count(), "load_average_before": os.getloadavg()[0], "input_hw": input_hw,
               "frame_hw": full_frames.shape[1:]}
    for batch in (1, 16):
        x = jnp.zeros((batch, *input_hw, 1), jnp.float32)
        results[f"network_batch{batch}_fps"] = frames_per_second(lambda x=x: apply(params, x), batch, repeats)
    results["probabilities_batch16_fps"] = frames_per_second(
        lambda: predict_probabilities_NxHxW(model, params, input_hw, full_frames, 16), 16, repeats
    )
    results["segment_frames_batch16_fps"] = frames_per_second(
        lambda: segment_frames(full_frames, (128, 128), checkpoint=checkpoint, batch_size=16).found_N,
        16, repeats,
    )
    results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    cli.run(main, define_flags)
