"""Latency and keeping up of `muscle_jax.live` on a real GasFasTrack clip played at its own rate.

    python experiments/live_benchmark.py --workdir=runs/gasfastrack --rounds=3 --json=runs/live_benchmark.json

Each round runs the live command once per variant, in turns (so that a drift in a shared
machine's speed touches every variant alike), on the same clip (default: the 394-frame passive
range-of-motion push, 61 frames/s):

  realtime          `--input=<clip> --realtime --output=<csv>`: the clip paced at 61 frames/s
  realtime+lsl      the same, with an LSL outlet that this script's consumer reads on loopback
  realtime+overlay  the same as `realtime`, with the overlay video written alongside
  pipe_nut          `experiments/live_play.py` remuxing the clip into NUT at 61 frames/s, piped
                    into `--input=-`; latency also from the moment each packet was sent
  pipe_mpegts       the same through MPEG-TS (whose demuxer holds each frame until the next)
  pipe_matroska     the same through Matroska (not run unless asked for: it buffers clusters)

Per-frame latency (capture to estimate) is read from each run's CSV; percentiles pool every
frame of a variant's rounds (nearest rank), with each round's own p99 beside them. Sustained
frames/s is estimated frames over the time from the first estimate to the last. Targets (issue
19): no frame dropped at 61 frames/s and p99 latency under 50 ms. The machine (CPU model, load
average before and after, the other processes using the CPU) is recorded with the figures.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
from absl import flags

from muscle_jax import cli

FLAGS = flags.FLAGS
_REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("realtime", "realtime+lsl", "realtime+overlay", "pipe_nut", "pipe_mpegts", "pipe_matroska")
DEFAULT_VARIANTS = VARIANTS[:5]
TARGET_P99_MS = 50.0


def define_flags() -> None:
    flags.DEFINE_string("workdir", "runs/gasfastrack", "A trained GasFasTrack run.")
    flags.DEFINE_string("clip", "../shared/data/gasfastrack/clips/p6_passive_ROM_01_push_01.mp4", "The clip to play.")
    flags.DEFINE_integer("rounds", 3, "Rounds; each runs every variant once, in turns.")
    flags.DEFINE_list("variants", list(DEFAULT_VARIANTS), f"Variants to run, of {VARIANTS}.")
    flags.DEFINE_string("json", None, "Write the figures here (and a .md table beside it).")
    flags.DEFINE_string("input_options", "", "Passed to live's --input_options in the pipe variants (e.g. probesize=5000000).")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{model}, {os.cpu_count()} cores"


def busy_processes() -> list[str]:
    """Other processes using the CPU now (ps, over 5 % CPU), to report beside the figures."""
    listing = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout.splitlines()[1:]
    return [line.strip() for line in listing if line.split() and float(line.split()[0]) > 5.0][:8]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def consume_lsl(name: str, samples: list, stop: threading.Event) -> None:
    """Reads the stream on loopback while the run lasts: what a lab's recorder would do."""
    streams = pylsl.resolve_byprop("name", name, timeout=30)
    if not streams:
        return
    inlet = pylsl.StreamInlet(streams[0])
    while not stop.is_set():
        sample, stamp = inlet.pull_sample(timeout=0.1)  # each sample the moment it arrives
        if sample is not None:
            samples.append((sample[0], stamp, pylsl.local_clock()))


def run_variant(variant: str, workdir: str, clip: str, out: Path) -> dict:
    csv_path, summary_path = out / f"{variant}.csv", out / f"{variant}.json"
    command = [sys.executable, "-m", "muscle_jax.live", f"--workdir={workdir}", f"--output={csv_path}",
               f"--summary_json={summary_path}"]
    sent_log = out / f"{variant}.sent.csv"
    lsl_samples, lsl_stop, consumer = [], threading.Event(), None
    if variant.startswith("pipe"):
        read_end, write_end = os.pipe()
        live = subprocess.Popen([*command, "--input=-", f"--input_options={FLAGS.input_options}"], cwd=_REPO, stdin=read_end, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        os.close(read_end)
        _wait_for(live, "live: waiting for")
        container = variant.split("_", 1)[1]
        player = subprocess.Popen([sys.executable, "experiments/live_play.py", f"--input={clip}", f"--sent_log={sent_log}",
                                   f"--format={container}"], cwd=_REPO, stdout=write_end, stderr=subprocess.DEVNULL)
        os.close(write_end)
        live.communicate()
        player.wait()
    else:
        extra = {"realtime": [], "realtime+overlay": [f"--overlay={out / 'overlay.mp4'}"],
                 "realtime+lsl": [f"--lsl=live_benchmark_{os.getpid()}", "--lsl_wait_s=30"]}[variant]
        if variant == "realtime+lsl":
            consumer = threading.Thread(target=consume_lsl, args=(extra[0].split("=", 1)[1], lsl_samples, lsl_stop))
            consumer.start()
        live = subprocess.Popen([*command, f"--input={clip}", "--realtime", *extra], cwd=_REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        live.communicate()
    if consumer is not None:
        time.sleep(0.5)
        lsl_stop.set()
        consumer.join()
    if live.returncode != 0:
        raise RuntimeError(f"{variant}: live exited with status {live.returncode}")
    rows = read_rows(csv_path)
    ok = [r for r in rows if r["status"] == "ok"]
    result = {
        "frames": len(rows),
        "dropped": sum(r["status"] == "dropped" for r in rows),
        "latency_ms": [float(r["latency_ms"]) for r in ok],
        "ready_s": [float(r["ready_s"]) for r in ok],
        "summary": json.loads(summary_path.read_text()),
    }
    if variant.startswith("pipe"):
        sent = {int(r["packet"]): float(r["sent_s"]) for r in read_rows(sent_log)}
        # This clip has one packet per frame, in order: frame k left the player with packet k.
        result["sent_to_ready_ms"] = [1000 * (float(r["ready_s"]) - sent[int(r["frame"])]) for r in ok]
    if variant == "realtime+lsl":
        capture = {int(float(r["frame"])): float(r["capture_s"]) for r in rows}
        result["lsl_received"] = len(lsl_samples)
        result["capture_to_consumer_ms"] = [1000 * (received - capture[int(frame)]) for frame, _, received in lsl_samples]
    return result


def _wait_for(process, prefix: str) -> None:
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"live ended before printing {prefix!r}")
        if line.startswith(prefix):
            return


def percentiles(values_ms) -> dict:
    values = np.asarray(values_ms)
    if not len(values):
        return {}
    return {f"p{p}": float(np.percentile(values, p, method="inverted_cdf")) for p in (50, 95, 99)} | {"max": float(values.max())}


def aggregate(variant: str, runs: list[dict]) -> dict:
    sustained = [(len(r["ready_s"]) - 1) / (r["ready_s"][-1] - r["ready_s"][0]) for r in runs]
    result = {
        "rounds": len(runs),
        "frames_per_round": [r["frames"] for r in runs],
        "dropped_per_round": [r["dropped"] for r in runs],
        "latency_ms": percentiles([v for r in runs for v in r["latency_ms"]]),
        "p99_per_round_ms": [percentiles(r["latency_ms"])["p99"] for r in runs],
        "sustained_fps_per_round": sustained,
        "reader_lag_p99_ms_per_round": [r["summary"]["reader_lag_ms"]["p99"] for r in runs],
    }
    if variant.startswith("pipe"):
        result["sent_to_ready_ms"] = percentiles([v for r in runs for v in r["sent_to_ready_ms"]])
    if variant == "realtime+lsl":
        result["lsl_received_per_round"] = [r["lsl_received"] for r in runs]
        result["capture_to_consumer_ms"] = percentiles([v for r in runs for v in r["capture_to_consumer_ms"]])
    if variant == "realtime+overlay":
        result["overlay_frames_per_round"] = [r["summary"]["overlay_frames"] for r in runs]
        result["overlay_not_rendered_per_round"] = [r["summary"]["overlay_not_rendered"] for r in runs]
    return result


def markdown(report: dict) -> str:
    lines = [f"Commit {report.get('commit', '?')}. Machine: {report['machine']}; load average {report['load_before']:.2f} before, {report['load_after']:.2f} after; "
             f"busy before: {'; '.join(report['busy_before']) or 'nothing'}.", "",
             "| variant | frames (dropped) per round | latency p50 / p95 / p99 / max, ms | p99 per round, ms "
             "| sustained frames/s per round | further along, p50 / p99, ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant, figures in report["variants"].items():
        lat = figures["latency_ms"]
        frames = ", ".join(f"{f} ({d})" for f, d in zip(figures["frames_per_round"], figures["dropped_per_round"]))
        further = "—"
        if "sent_to_ready_ms" in figures:
            further = f"sent → ready {figures['sent_to_ready_ms']['p50']:.1f} / {figures['sent_to_ready_ms']['p99']:.1f}"
        if "capture_to_consumer_ms" in figures:
            further = (f"capture → LSL consumer {figures['capture_to_consumer_ms']['p50']:.1f} / "
                       f"{figures['capture_to_consumer_ms']['p99']:.1f} ({sum(figures['lsl_received_per_round'])} samples)")
        if "overlay_frames_per_round" in figures:
            further = f"overlay frames {figures['overlay_frames_per_round']}, not rendered {figures['overlay_not_rendered_per_round']}"
        lines.append(f"| {variant} | {frames} | {lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} | "
                     f"{', '.join(f'{v:.1f}' for v in figures['p99_per_round_ms'])} | "
                     f"{', '.join(f'{v:.1f}' for v in figures['sustained_fps_per_round'])} | {further} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    del argv
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; expected names from {VARIANTS}")
    commit = subprocess.run(["git", "-C", str(_REPO), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    report = {"machine": machine(), "commit": commit, "clip": FLAGS.clip, "workdir": FLAGS.workdir, "load_before": os.getloadavg()[0],
              "busy_before": busy_processes(), "command": " ".join(sys.argv)}
    runs = {variant: [] for variant in FLAGS.variants}
    with tempfile.TemporaryDirectory(prefix="live_benchmark_") as tmp:
        for round_index in range(FLAGS.rounds):
            for variant in FLAGS.variants:
                out = Path(tmp) / f"round{round_index}"
                out.mkdir(exist_ok=True)
                runs[variant].append(run_variant(variant, FLAGS.workdir, FLAGS.clip, out))
                figures = percentiles(runs[variant][-1]["latency_ms"])
                print(f"round {round_index + 1}/{FLAGS.rounds} {variant}: {runs[variant][-1]['frames']} frames, "
                      f"{runs[variant][-1]['dropped']} dropped, p50 {figures['p50']:.1f} p99 {figures['p99']:.1f} ms", flush=True)
    report["load_after"] = os.getloadavg()[0]
    report["busy_after"] = busy_processes()
    report["variants"] = {variant: aggregate(variant, variant_runs) for variant, variant_runs in runs.items()}
    report["targets"] = {variant: {"no_drops": sum(f["dropped_per_round"]) == 0,
                                   "p99_under_50_ms": f["latency_ms"]["p99"] < TARGET_P99_MS}
                         for variant, f in report["variants"].items()}
    text = markdown(report)
    print(text)
    print(json.dumps(report["targets"], indent=1))
    if FLAGS.json:
        Path(FLAGS.json).parent.mkdir(parents=True, exist_ok=True)
        Path(FLAGS.json).write_text(json.dumps(report, indent=1) + "\n")
        Path(FLAGS.json).with_suffix(".md").write_text(text)


if __name__ == "__main__":
    cli.run(main, define_flags)
