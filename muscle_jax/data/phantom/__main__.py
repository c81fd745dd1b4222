"""Times phantom generation and prints frames/s.

    python -m muscle_jax.data.phantom --preset=phantom_small                 # whole preset, its workers
    python -m muscle_jax.data.phantom --preset=phantom_paper --participants=2 --workers=2   # a subset

With a subset, the full preset's time is extrapolated from frames/s (said in the output).
The machine's load average is printed too, since other work on the cores slows the run;
the CPU time of one participant, measured in this process, gives the idle-machine estimate.
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import flags

from muscle_jax import cli
from muscle_jax.data.phantom.config import PRESETS
from muscle_jax.data.phantom.simulate import simulate_participants, simulate_trial


def define_flags() -> None:
    flags.DEFINE_enum("preset", "phantom_small", sorted(PRESETS), "The phantom preset to generate.")
    flags.DEFINE_integer("participants", None, "Generate only this many participants.")
    flags.DEFINE_integer("workers", None, "Processes (default: the preset's).")
    flags.DEFINE_boolean("cpu_only", False, "Only time one trial's CPU use and extrapolate.")


def main(argv: list[str]) -> None:
    args = flags.FLAGS
    preset = PRESETS[args.preset]()
    config = dataclasses.replace(
        preset,
        num_participants=args.participants or preset.num_participants,
        workers=preset.workers if args.workers is None else args.workers,
    )
    frames_per_participant = round(sum(d for _, d, _ in config.trial_durations_s()) * config.frame_rate_hz)
    if not args.cpu_only:
        start = time.perf_counter()
        frames = 0
        for _, trials in simulate_participants(config):
            frames += sum(len(trial["frame"]) for trial in trials)
        seconds = time.perf_counter() - start
        rate = frames / seconds
        print(
            f"{args.preset}: {config.num_participants} participants, {frames} frames of {config.frame_hw} "
            f"in {seconds:.1f} s with {config.workers} workers = {rate:.0f} frames/s "
            f"(load average {os.getloadavg()[0]:.1f})"
        )
        if config.num_participants != preset.num_participants:
            total = frames_per_participant * preset.num_participants
            print(f"extrapolated from {config.num_participants} participants: the full preset "
                  f"({preset.num_participants} participants, {total} frames) would take ~{total / rate:.0f} s at this rate")
    # CPU time of one trial in this process depends little on what else runs on the cores;
    # with W busy workers the wall time is about the total CPU time over W.
    cpu_start = time.process_time()
    one = len(simulate_trial(config, 0, 0)["frame"])
    cpu_per_frame = (time.process_time() - cpu_start) / one
    total = frames_per_participant * preset.num_participants
    print(
        f"CPU time: {1 / cpu_per_frame:.0f} frames/s per core; the full preset ({preset.num_participants} "
        f"participants, ~{total} frames) needs ~{total * cpu_per_frame:.1f} CPU s, "
        f"~{total * cpu_per_frame / max(preset.workers, 1):.1f} s on {max(preset.workers, 1)} idle cores"
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
