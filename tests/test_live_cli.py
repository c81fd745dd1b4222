"""`python -m muscle_jax.live` as a person runs it: a real GasFasTrack clip played through a pipe at
real time, and a session stopped with Ctrl-C, each leaving a complete CSV, a decodable overlay and
a latency summary."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from test_live_stream import SHORT_CLIP

_REPO = Path(__file__).resolve().parents[1]
LONG_CLIP = SHORT_CLIP.with_name("p6_passive_ROM_01_push_01.mp4")
GASFASTRACK_CROP = "--crop=214,44,720,574"


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def overlay_frames(path) -> int:
    with av.open(str(path)) as video:
        return sum(1 for _ in video.decode(video=0))


def start_live(workdir, *args, **popen):
    command = [sys.executable, "-m", "muscle_jax.live", f"--workdir={workdir}", GASFASTRACK_CROP, *map(str, args)]
    return subprocess.Popen(command, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for_line(process, prefix: str) -> list[str]:
    lines = []
    while not (lines and lines[-1].startswith(prefix)):
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"live ended before printing {prefix!r}: {process.stderr.read()[-3000:]}")
        lines.append(line.rstrip("\n"))
    return lines


def latency_figures(stdout: str) -> dict[str, float]:
    match = re.search(r"latency capture → estimate, ms: p50 ([\d.]+), p95 ([\d.]+), p99 ([\d.]+)", stdout)
    assert match, stdout
    return dict(zip(("p50", "p95", "p99"), map(float, match.groups())))


@pytest.fixture(scope="module")
def piped_session(recordings_run, tmp_path_factory):
    """A real clip remuxed into MPEG-TS and played at its own 61 frames/s into live's standard input."""
    out = tmp_path_factory.mktemp("piped")
    read_end, write_end = os.pipe()
    live = start_live(recordings_run[0], "--input=-", f"--output={out / 'live.csv'}", f"--overlay={out / 'live.mp4'}",
                      stdin=read_end)
    os.close(read_end)
    lines = wait_for_line(live, "live: waiting for standard input")
    # The scanner starts once live is ready, as in a lab where the estimator is started first.
    player = subprocess.Popen([sys.executable, "experiments/live_play.py", f"--input={SHORT_CLIP}"], cwd=_REPO,
                              stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)  # the player holds the pipe now: it ends when the player does
    stdout, stderr = live.communicate(timeout=120)
    stdout = "\n".join(lines) + "\n" + stdout
    player.wait(timeout=30)
    assert live.returncode == 0, stderr[-3000:]
    return out, stdout


def test_a_real_clip_through_a_pipe_at_real_time_gives_one_row_per_frame_in_order(piped_session):
    out, stdout = piped_session
    rows = read_rows(out / "live.csv")
    with av.open(str(SHORT_CLIP)) as clip:
        frame_count = clip.streams.video[0].frames
    assert [int(r["frame"]) for r in rows] == list(range(frame_count)) == list(range(59))
    statuses = [r["status"] for r in rows]
    assert set(statuses) <= {"ok", "dropped"}
    figures = latency_figures(stdout)
    assert 0 < figures["p50"] <= figures["p95"] <= figures["p99"]
    assert all(float(r["latency_ms"]) > 0 for r in rows if r["status"] == "ok")
    # The printed account matches the CSV: every frame counted under its status.
    counted = re.search(r"(\d+) frames \(([^)]*)\); stopped by the end of the source", stdout)
    assert counted and int(counted.group(1)) == len(rows)
    by_status = {status: int(count) for count, status in (part.split() for part in counted.group(2).split(", "))}
    assert by_status == {status: statuses.count(status) for status in set(statuses)}


def test_the_overlay_video_decodes_with_one_frame_per_estimated_frame(piped_session):
    out, stdout = piped_session
    estimated = sum(r["status"] == "ok" for r in read_rows(out / "live.csv"))
    assert overlay_frames(out / "live.mp4") == estimated
    assert f"overlay: {estimated} frames → {out / 'live.mp4'}" in stdout


def test_ctrl_c_stops_cleanly_with_everything_written(recordings_run, tmp_path):
    output, overlay = tmp_path / "live.csv", tmp_path / "live.mp4"
    live = start_live(recordings_run[0], f"--input={LONG_CLIP}", "--realtime", f"--output={output}", f"--overlay={overlay}")
    wait_for_line(live, "live: " + str(LONG_CLIP))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (output.exists() and output.read_text().count("\n") > 30):
        time.sleep(0.02)
    live.send_signal(signal.SIGINT)
    stdout, stderr = live.communicate(timeout=60)
    assert live.returncode == 130, stderr[-3000:]
    assert stderr.rstrip().endswith("interrupted")
    assert "stopped by an interrupt" in stdout
    latency_figures(stdout)
    text = output.read_text()
    rows = read_rows(output)
    assert text.endswith("\n") and 30 <= len(rows) < 394
    assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
    assert overlay_frames(overlay) == sum(r["status"] == "ok" for r in rows)
