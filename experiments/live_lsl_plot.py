"""A consumer of `muscle_jax.live`'s LSL stream: receives it, reports how late samples arrive, and
plots what it received (ensemble mean with its ±1 sd band per state, against the capture time).

    python -m muscle_jax.live --workdir=runs/gasfastrack --input=<clip> --realtime --lsl=muscle &
    python experiments/live_lsl_plot.py --name=muscle --plot=runs/live_lsl.png

The stream is found by name on the network (loopback included), read until it ends (its outlet
closes) or `--duration_s` passes, and its channels are taken from the stream's own metadata
(labels and units), so the script works for any set of estimated states. `--csv` keeps the raw
samples. Capture-to-consumer delay is the receiving machine's LSL clock minus the sample's
timestamp (the frame's capture time): meaningful on one machine, or with LSL's clock offsets.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pylsl
from absl import flags

from muscle_jax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("name", None, "Name of the LSL stream (live's --lsl).")
    flags.DEFINE_float("timeout_s", 30.0, "How long to look for the stream.")
    flags.DEFINE_float("duration_s", 0.0, "Stop after this long (0: when the stream ends).")
    flags.DEFINE_string("plot", None, "PNG of the received states.")
    flags.DEFINE_string("csv", None, "CSV of the received samples: timestamp, received_s, then the channels.")
    flags.mark_flags_as_required(["name"])


def channels_of(info: pylsl.StreamInfo) -> list[tuple[str, str]]:
    """(label, unit) of every channel, from the stream's description."""
    channels, channel = [], info.desc().child("channels").child("channel")
    while not channel.empty():
        channels.append((channel.child_value("label"), channel.child_value("unit")))
        channel = channel.next_sibling()
    if len(channels) != info.channel_count():
        raise ValueError(f"stream {info.name()!r}: describes {len(channels)} channels but carries {info.channel_count()}")
    return channels


def receive(inlet: pylsl.StreamInlet, duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples, their timestamps and when each was received, until the stream ends or time is up."""
    samples, stamps, received = [], [], []
    started = time.monotonic()
    while not duration_s or time.monotonic() - started < duration_s:
        try:
            # One sample at a time: each is taken the moment it arrives, so its delay is its own.
            sample, stamp = inlet.pull_sample(timeout=0.2)
        except pylsl.util.LostError:
            break
        if sample is not None:
            received.append(pylsl.local_clock())
            samples.append(sample)
            stamps.append(stamp)
    return np.array(samples), np.array(stamps), np.array(received)


def plot(path: str, channels: list[tuple[str, str]], samples_NxC: np.ndarray, stamps_N: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label, _ in channels]
    states = [k for k, label in enumerate(labels) if label not in ("frame", "latency_ms") and not label.endswith("_std")]
    figure, axes = plt.subplots(len(states), 1, figsize=(8, 2.3 * len(states)), sharex=True, squeeze=False)
    t_N = stamps_N - stamps_N[0]
    for axis, k in zip(axes[:, 0], states):
        mean_N = samples_NxC[:, k]
        if f"{labels[k]}_std" in labels:
            std_N = samples_NxC[:, labels.index(f"{labels[k]}_std")]
            axis.fill_between(t_N, mean_N - std_N, mean_N + std_N, alpha=0.3, label="±1 sd across folds")
        axis.plot(t_N, mean_N, lw=1.2, label="ensemble mean (received)")
        axis.set_ylabel(f"{labels[k]} ({channels[k][1]})")
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("capture time (s, from the first sample)")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str]) -> None:
    del argv
    streams = pylsl.resolve_byprop("name", FLAGS.name, timeout=FLAGS.timeout_s)
    if not streams:
        raise ValueError(f"no LSL stream named {FLAGS.name!r} found within {FLAGS.timeout_s:g} s")
    # Without recovery an inlet reports the end of its stream (the outlet closing) as LostError.
    inlet = pylsl.StreamInlet(streams[0], recover=False)
    inlet.open_stream(timeout=FLAGS.timeout_s)
    info = inlet.info(timeout=FLAGS.timeout_s)
    channels = channels_of(info)
    print(f"receiving {info.name()!r} ({info.type()}, {info.nominal_srate():g} Hz): "
          + ", ".join(f"{label} ({unit})" for label, unit in channels), flush=True)
    samples_NxC, stamps_N, received_N = receive(inlet, FLAGS.duration_s)
    if not len(samples_NxC):
        raise ValueError(f"stream {FLAGS.name!r}: no sample arrived")
    delay_ms = 1000 * (received_N - stamps_N)
    frames = samples_NxC[:, [label for label, _ in channels].index("frame")]
    print(f"{len(samples_NxC)} samples (frames {int(frames[0])}–{int(frames[-1])}, "
          f"{int(frames[-1] - frames[0] + 1 - len(frames))} missing); capture to this consumer, ms: "
          + ", ".join(f"p{p} {np.percentile(delay_ms, p):.1f}" for p in (50, 95, 99)))
    if FLAGS.csv:
        header = ",".join(["timestamp", "received_s", *(label for label, _ in channels)])
        np.savetxt(FLAGS.csv, np.column_stack([stamps_N, received_N, samples_NxC]), delimiter=",", header=header,
                   comments="", fmt="%.6f")
    if FLAGS.plot:
        plot(FLAGS.plot, channels, samples_NxC, stamps_N, f"LSL stream {info.name()!r}")
        print(f"plot → {FLAGS.plot}")


if __name__ == "__main__":
    cli.run(main, define_flags)
