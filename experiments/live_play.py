"""A stand-in for a scanner: plays a recorded video into a pipe at its own frame rate.

    python experiments/live_play.py --input=../shared/data/gasfastrack/clips/p6_passive_ROM_01_push_01.mp4 \\
        | python -m muscle_jax.live --workdir=runs/gasfastrack --input=- --output=live.csv

The video's packets are remuxed, not re-encoded, into a streamable container on standard output
(NUT by default; `--format=mpegts` or `matroska`), each one written when it is due by its
timestamp, so the reader on the other end receives the recording as it would a live feed. NUT
hands each frame over as soon as it is written; MPEG-TS's demuxer holds a frame until the next
one begins, and Matroska buffers clusters (`experiments/live_benchmark.py` measures all three:
docs/live.md).
`--sent_log` records when each packet left (LSL clock, one line per packet: its number and time),
so an end-to-end latency can be measured from the moment a frame was sent.
"""

from __future__ import annotations

import sys
import time

import av
import pylsl
from absl import flags

from muscle_jax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("input", None, "The video to play.")
    flags.DEFINE_enum("format", "nut", ["nut", "mpegts", "matroska"], "Streamable container written to stdout.")
    flags.DEFINE_float("speed", 1.0, "Playback speed (1 = real time; 0 = as fast as the pipe takes it).")
    flags.DEFINE_string("sent_log", None, "Write 'packet,sent_s' lines here (LSL clock).")
    flags.mark_flags_as_required(["input"])


def play(path: str, container_format: str, speed: float, out, sent: list) -> int:
    """Writes the packets of `path` to `out` at `speed` × their own pace; returns how many."""
    with av.open(path) as source:
        stream = source.streams.video[0]
        with av.open(out, "w", format=container_format, options={"flush_packets": "1"}) as sink:
            target = sink.add_stream_from_template(stream)
            started, first_pts, count = None, None, 0
            for packet in source.demux(stream):
                if packet.dts is None:  # the demuxer's final empty packet
                    continue
                if speed > 0:
                    first_pts = packet.pts if first_pts is None else first_pts
                    started = time.monotonic() if started is None else started
                    delay = started + float((packet.pts - first_pts) * stream.time_base) / speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                packet.stream = target
                sink.mux(packet)
                out.flush()
                sent.append(pylsl.local_clock())
                count += 1
    return count


def main(argv: list[str]) -> None:
    del argv
    sent: list[float] = []
    try:
        play(FLAGS.input, FLAGS.format, FLAGS.speed, sys.stdout.buffer, sent)
    except (BrokenPipeError, av.error.FFmpegError) as error:
        # The reader went away: nothing left to play to.
        print(f"live_play: stopped after {len(sent)} packets ({error})", file=sys.stderr)
    finally:
        if FLAGS.sent_log:
            with open(FLAGS.sent_log, "w") as log_file:
                log_file.write("packet,sent_s\n" + "".join(f"{k},{t:.6f}\n" for k, t in enumerate(sent)))


if __name__ == "__main__":
    cli.run(main, define_flags)
