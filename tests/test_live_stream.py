"""The live frame reader (`readers.stream`): the same frames, numbers and times as read_video on a
real clip; paced files never early; growing files followed; corrupt frames, vanishing sources and
unopenable inputs reported by name."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from muscle_jax.data.readers.stream import SourceError, SourceSpec, StreamFrame, UndecodableFrame, kind_of, open_source
from muscle_jax.data.readers.video import read_video
from test_readers import synthetic_frames

SHORT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "gasfastrack" / "clips" / "p6_isokinetic500_01_push_01.mp4"


def write_stream(path: Path, frames_NxHxW: np.ndarray, fps: int = 30, garbage_at: int | None = None) -> Path:
    """Gray frames as MJPEG in Matroska (what USB capture cards deliver, and streamable); the packet
    of frame `garbage_at` replaced by bytes no JPEG decoder accepts."""
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=fps)
        stream.height, stream.width = frames_NxHxW.shape[1:]
        stream.pix_fmt = "yuvj420p"
        for k, gray in enumerate(frames_NxHxW):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, axis=-1), format="rgb24")):
                if k == garbage_at:
                    garbage = av.Packet(b"\x00\x00\x01\xff" * 8)
                    garbage.pts, garbage.dts, garbage.time_base, garbage.stream = packet.pts, packet.dts, packet.time_base, packet.stream
                    packet = garbage
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_all(spec: SourceSpec, clock=time.monotonic):
    with open_source(spec, clock) as source:
        return list(source.frames())


def test_live_reader_gives_read_videos_frames_numbers_and_times_on_a_real_clip():
    reference = read_video(SHORT_CLIP)
    frames = read_all(SourceSpec(str(SHORT_CLIP), "file"))
    assert all(isinstance(f, StreamFrame) for f in frames)
    np.testing.assert_array_equal([f.index for f in frames], reference.index_N)
    np.testing.assert_allclose([f.time_s for f in frames], reference.time_s_N, atol=1e-9)
    np.testing.assert_array_equal(np.stack([f.gray_HxW for f in frames]), reference.images_N)


def test_a_paced_file_delivers_no_frame_before_it_is_due():
    delivered, frames = [], []
    with open_source(SourceSpec(str(SHORT_CLIP), "file", realtime=True), time.monotonic) as source:
        for frame in source.frames():
            delivered.append(time.monotonic())
            frames.append(frame)
    capture_s = np.array([f.capture_s for f in frames])
    # Each frame is due at the first one's arrival plus its own timestamp, and not handed over before.
    np.testing.assert_allclose(capture_s - capture_s[0], [f.time_s for f in frames], atol=1e-9)
    assert np.all(np.array(delivered) >= capture_s)


def test_a_growing_file_is_followed_until_it_stops_growing_and_a_truncation_is_an_error(tmp_path):
    whole = write_stream(tmp_path / "whole.mkv", synthetic_frames(20)).read_bytes()
    growing = tmp_path / "growing.mkv"
    growing.write_bytes(whole[:2000])
    chunks = [whole[k : k + 1500] for k in range(2000, len(whole), 1500)]

    def scanner(data=chunks, truncate=False):
        for chunk in data:
            time.sleep(0.01)
            with open(growing, "ab") as handle:
                handle.write(chunk)
        if truncate:
            time.sleep(0.05)
            with open(growing, "r+b") as handle:
                handle.truncate(1000)

    writer = threading.Thread(target=scanner)
    writer.start()
    frames = read_all(SourceSpec(str(growing), "growing", follow_timeout_s=1.5))
    writer.join()
    assert [f.index for f in frames] == list(range(20))

    growing.write_bytes(whole[:2000])
    writer = threading.Thread(target=scanner, args=(chunks[: len(chunks) // 2], True))
    writer.start()
    seen = []
    with pytest.raises(SourceError, match=r"growing\.mkv: stopped delivering frames after \d+ decoded frame\(s\).*shrank"):
        with open_source(SourceSpec(str(growing), "growing", follow_timeout_s=2.0)) as source:
            for frame in source.frames():
                seen.append(frame.index)
    writer.join()
    assert seen == list(range(len(seen))) and 0 < len(seen) < 20


def test_a_corrupt_frame_is_reported_in_its_place_and_the_rest_keep_their_numbers(tmp_path):
    frames = read_all(SourceSpec(str(write_stream(tmp_path / "corrupt.mkv", synthetic_frames(12), garbage_at=5)), "file"))
    assert [f.index for f in frames] == list(range(12))
    bad = [f for f in frames if isinstance(f, UndecodableFrame)]
    assert [f.index for f in bad] == [5] and "Invalid data" in bad[0].error
    np.testing.assert_allclose(frames[7].time_s, 7 / 30, atol=1e-3)


def test_sources_that_cannot_be_opened_are_named(tmp_path):
    garbage = tmp_path / "noise.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases = [
        (SourceSpec(str(tmp_path / "missing.mp4"), "file"), r"missing\.mp4: no such file"),
        (SourceSpec(str(tmp_path), "file"), r"is a folder; live reads a video stream"),
        (SourceSpec(str(garbage), "file"), r"noise\.mp4: cannot be opened as a video source"),
        (SourceSpec("/dev/video_muscle_jax_test", kind_of("/dev/video_muscle_jax_test")), r"/dev/video_muscle_jax_test: no such capture device"),
    ]
    for spec, message in cases:
        with pytest.raises(SourceError, match=message):
            open_source(spec)
    with pytest.raises(ValueError, match=r"standard input: realtime pacing is for a finished file"):
        SourceSpec("-", kind_of("-"), realtime=True)
