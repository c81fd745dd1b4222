"""Live sessions on a real (tiny) trained run, in process: the same estimates as predict, frame
stacks of earlier frames only, every drop written and counted, the LSL outlet read back on
loopback, and bad input reported by name with nothing already written lost."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import csv
import dataclasses
import threading
import time
from pathlib import Path

import av
import numpy as np
import pylsl
import pytest

from muscle_jax import ensemble as ensemble_lib
from muscle_jax import live, predict
from muscle_jax.data import pipeline, recordings
from muscle_jax.data.readers.frames import Crop, detect_image_region
from muscle_jax.data.readers.stream import SourceError, SourceSpec, open_source
from muscle_jax.data.readers.video import read_video
from muscle_jax.architecture import measure
from muscle_jax.streaming import prepare as prepare_module
from muscle_jax.streaming.estimators import ARCHITECTURE_CHANNELS, ArchitectureEstimator, Channel, Estimates
from muscle_jax.streaming.prepare import DETECTING_REGION, DROPPED, OK, UNDECODABLE, FramePreparer, rectangle_xy
from test_live_stream import SHORT_CLIP, write_stream
from test_readers import synthetic_frames, write_video

TARGETS = ("angle_deg", "torque_nm", "emg_v")
GASFASTRACK_CROP = Crop(214, 44, 720, 574)


@pytest.fixture(scope="module")
def ensemble(recordings_run):
    return ensemble_lib.load(recordings_run[0])


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def values_of(rows):
    return np.array([[float(r[t]) for t in TARGETS] for r in rows])


def run(ensemble, workdir, spec, tmp_path, **kwargs):
    kwargs.setdefault("output", str(tmp_path / "live.csv"))
    # Room for half a second of frames: tests that expect every frame estimated must not depend
    # on how busy the machine running them is (the drop test sets its own).
    kwargs.setdefault("queue", 16)
    result = live.run_live(ensemble, str(workdir), spec, announce=kwargs.pop("announce", lambda line: None), **kwargs)
    return result, read_rows(kwargs["output"])


def test_live_estimates_are_predicts_and_every_row_is_written_in_order(ensemble, recordings_run, tmp_path):
    video = write_video(tmp_path / "new.mp4", synthetic_frames(40))
    result, rows = run(ensemble, recordings_run[0], SourceSpec(str(video), "file", realtime=True), tmp_path)
    reference = predict.predict_recording(ensemble, video)
    assert result.outcome.error is None and result.outcome.summary.stopped_by == "the end of the source"
    assert [int(r["frame"]) for r in rows] == list(range(40)) and {r["status"] for r in rows} == {OK}
    np.testing.assert_allclose(values_of(rows), reference.mean_NxT, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], reference.time_s_N, atol=1e-6)
    latency_ms = np.array([float(r["latency_ms"]) for r in rows])
    np.testing.assert_allclose(latency_ms, [1000 * (float(r["ready_s"]) - float(r["capture_s"])) for r in rows], atol=2e-3)
    # The summary's percentiles are the CSV's, to its 0.1 ms bins.
    summary = result.outcome.summary
    for p in (50, 95, 99):
        exact = np.percentile(latency_ms, p, method="inverted_cdf")
        assert exact - 1e-3 <= summary.latency_ms[f"p{p}"] <= exact + 0.1 + 1e-3
    assert summary.by_status == {OK: 40} and summary.frames == 40


def test_a_slow_estimator_drops_the_oldest_waiting_frames_and_writes_every_one(ensemble, recordings_run, tmp_path):
    video = write_video(tmp_path / "long.mp4", synthetic_frames(200))
    # Not paced: the reader outruns the estimator, and one frame may wait.
    result, rows = run(ensemble, recordings_run[0], SourceSpec(str(video), "file"), tmp_path, queue=1)
    statuses = [r["status"] for r in rows]
    assert [int(r["frame"]) for r in rows] == list(range(200))
    assert set(statuses) == {OK, DROPPED} and statuses.count(DROPPED) > 0
    assert result.outcome.summary.by_status == {OK: statuses.count(OK), DROPPED: statuses.count(DROPPED)}
    estimated = np.array([s == OK for s in statuses])
    assert np.isnan(values_of(rows)[~estimated]).all()
    # Drops never change what the estimated frames see: their stacks come from every decoded frame.
    reference = predict.predict_recording(ensemble, video)
    np.testing.assert_allclose(values_of(rows)[estimated], reference.mean_NxT[estimated], rtol=1e-4, atol=1e-5)


def test_frame_stacks_hold_earlier_frames_only_exactly_as_predicts(tmp_path):
    source = open_source(SourceSpec(str(SHORT_CLIP), "file"))
    preparer = FramePreparer((64, 64), "calibration", 3, GASFASTRACK_CROP, str(SHORT_CLIP), time.monotonic)
    with source:
        prepared = [preparer.prepare(frame) for frame in source.frames()]
    rois = recordings.read_rois(SHORT_CLIP, (64, 64), "calibration", GASFASTRACK_CROP)
    expected_NxHxWxS = pipeline.stack_sequence(rois.frames.images_N[..., None], 3)
    np.testing.assert_array_equal(np.stack([p.inputs_HxWxS for p in prepared]), expected_NxHxWxS)
    np.testing.assert_array_equal(prepared[0].lines["roi"][0], [214, 44])


def test_segmentation_rois_and_aponeurosis_lines_are_predicts_frame_by_frame(tmp_path):
    # Six real frames, losslessly re-encoded, through both paths of the segmentation ROI source.
    clip = tmp_path / "six.mkv"
    with av.open(str(SHORT_CLIP)) as source, av.open(str(clip), "w") as target:
        stream = target.add_stream("ffv1", rate=61)
        stream.width, stream.height, stream.pix_fmt = 1148, 624, "gray"
        for k, frame in zip(range(6), source.decode(video=0)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="gray"), format="gray")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    rois = recordings.read_rois(clip, (64, 64), "segmentation", GASFASTRACK_CROP)
    preparer = FramePreparer((64, 64), "segmentation", 1, GASFASTRACK_CROP, str(clip), time.monotonic)
    with open_source(SourceSpec(str(clip), "file")) as source:
        prepared = [preparer.prepare(frame) for frame in source.frames()]
    assert rois.found_N.all() and [p.status for p in prepared] == [OK] * 6
    np.testing.assert_array_equal(np.stack([p.inputs_HxWxS[..., 0] for p in prepared]), rois.frames.images_N)
    for p in prepared:
        superficial, deep = p.lines["superficial_aponeurosis"], p.lines["deep_aponeurosis"]
        # In frame pixels, inside the image region, the deep aponeurosis below the superficial one.
        assert (superficial[:, 0] >= GASFASTRACK_CROP.x).all() and (deep[:, 0] <= GASFASTRACK_CROP.x + GASFASTRACK_CROP.w).all()
        assert (deep[:, 1] > superficial[:, 1]).all() and (superficial[:, 1] >= GASFASTRACK_CROP.y).all()


def test_without_a_calibration_the_region_is_detected_from_the_first_frames_and_held(tmp_path):
    frames_NxHxW = synthetic_frames(16)
    source = open_source(SourceSpec(str(write_video(tmp_path / "clip.mp4", frames_NxHxW)), "file"))
    preparer = FramePreparer((8, 10), "calibration", 2, None, "clip.mp4", time.monotonic, detect_frames=6)
    with source:
        prepared = [preparer.prepare(frame) for frame in source.frames()]
    assert [p.status for p in prepared] == [DETECTING_REGION] * 6 + [OK] * 10
    decoded = np.stack([p.gray_HxW for p in prepared])
    assert preparer.crop == detect_image_region(decoded[:6]) == Crop(10, 8, 44, 32)
    # The first estimated frame is stacked with the last frame of the detection window.
    expected = pipeline.stack_sequence(
        np.stack([recordings.region_transform(preparer.crop, (8, 10), "calibration", "clip")(g) for g in decoded])[..., None], 2)
    np.testing.assert_array_equal(np.stack([p.inputs_HxWxS for p in prepared[6:]]), expected[6:])


def test_the_lsl_outlet_is_read_back_on_loopback_with_its_metadata(ensemble, recordings_run, tmp_path):
    video = write_video(tmp_path / "lsl.mp4", synthetic_frames(30))
    name = f"muscle_jax_test_{time.monotonic_ns()}"
    received = {}

    def consume():
        streams = pylsl.resolve_byprop("name", name, timeout=30)
        inlet = pylsl.StreamInlet(streams[0])
        inlet.open_stream(timeout=10)
        received["info"] = inlet.info(timeout=10)
        samples, stamps, deadline = [], [], time.monotonic() + 30
        while len(samples) < 30 and time.monotonic() < deadline:
            sample, stamp = inlet.pull_sample(timeout=0.2)
            if sample is not None:
                samples.append(sample)
                stamps.append(stamp)
        received.update(samples=np.array(samples), stamps=np.array(stamps))

    puller = threading.Thread(target=consume)
    puller.start()
    # The session waits for this consumer before its first frame, so it receives every sample.
    result, rows = run(ensemble, recordings_run[0], SourceSpec(str(video), "file", realtime=True), tmp_path, lsl=name,
                       lsl_wait_s=30)
    puller.join()
    assert result.outcome.error is None
    samples, stamps = received["samples"], received["stamps"]
    assert samples.shape == (30, 1 + 2 * len(TARGETS) + 1)
    np.testing.assert_array_equal(samples[:, 0], np.arange(30))
    columns = ["frame", *[c for t in TARGETS for c in (t, f"{t}_std")], "latency_ms"]
    np.testing.assert_allclose(samples, [[float(r[c]) for c in columns] for r in rows], rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(stamps, [float(r["capture_s"]) for r in rows], atol=1e-5)
    info = received["info"]
    assert (info.name(), info.type(), info.channel_count(), info.nominal_srate()) == (name, "MuscleState", len(columns), 30.0)
    channel, labels, units = info.desc().child("channels").child("channel"), [], []
    while not channel.empty():
        labels.append(channel.child_value("label"))
        units.append(channel.child_value("unit"))
        channel = channel.next_sibling()
    assert labels == columns
    assert units == ["count", "°", "°", "N·m", "N·m", "V", "V", "ms"]
    assert info.desc().child("muscle_jax").child_value("workdir") == str(Path(recordings_run[0]).resolve())


def test_a_source_that_fails_mid_stream_keeps_what_was_written(ensemble, recordings_run, tmp_path):
    whole = write_stream(tmp_path / "whole.mkv", synthetic_frames(30)).read_bytes()
    growing = tmp_path / "scanner.mkv"
    growing.write_bytes(whole[: len(whole) // 2])

    def unplug():
        # Once the session has written a few rows, the file shrinks under the reader.
        output, deadline = tmp_path / "live.csv", time.monotonic() + 30
        while time.monotonic() < deadline and not (output.exists() and output.read_text().count("\n") > 4):
            time.sleep(0.01)
        with open(growing, "r+b") as handle:
            handle.truncate(100)

    threading.Thread(target=unplug).start()
    result, rows = run(ensemble, recordings_run[0], SourceSpec(str(growing), "growing", follow_timeout_s=5.0), tmp_path,
                       overlay=str(tmp_path / "overlay.mp4"))
    error = result.outcome.error
    assert isinstance(error, SourceError) and "scanner.mkv: stopped delivering frames after" in str(error) and "shrank" in str(error)
    assert result.outcome.summary.stopped_by == "an error"
    assert 0 < len(rows) < 30 and [int(r["frame"]) for r in rows] == list(range(len(rows)))
    assert (tmp_path / "live.csv").read_text().endswith("\n")
    with av.open(str(tmp_path / "overlay.mp4")) as video:
        # The half already on disk arrives at once, so some frames may be dropped: the video has the others.
        assert sum(1 for _ in video.decode(video=0)) == sum(r["status"] == OK for r in rows) == result.overlay_frames


def test_a_corrupt_frame_stops_the_session_by_name_unless_bad_frames_are_skipped(ensemble, recordings_run, tmp_path):
    stream = write_stream(tmp_path / "capture.mkv", synthetic_frames(12), garbage_at=5)
    result, rows = run(ensemble, recordings_run[0], SourceSpec(str(stream), "file", realtime=True), tmp_path)
    assert "capture.mkv: frame 5 could not be decoded" in str(result.outcome.error)
    assert "--skip_bad_frames" in str(result.outcome.error)
    assert [r["status"] for r in rows] == [OK] * 5 + [UNDECODABLE]
    result, rows = run(ensemble, recordings_run[0], SourceSpec(str(stream), "file", realtime=True), tmp_path, skip_bad_frames=True)
    assert result.outcome.error is None
    assert [r["status"] for r in rows] == [OK] * 5 + [UNDECODABLE] + [OK] * 6
    assert result.outcome.summary.by_status == {OK: 11, UNDECODABLE: 1}


def test_a_run_that_does_not_fit_the_input_is_refused_by_name(ensemble, recordings_run, tmp_path):
    workdir = str(recordings_run[0])
    clip = SourceSpec(str(SHORT_CLIP), "file")
    with pytest.raises(ValueError, match=r"p6_isokinetic500_01_push_01\.mp4: its 1148x624 frames do not hold the image region "
                                         r"x=900 y=44 w=720 h=574 \(--crop\); give a --crop inside the frame"):
        run(ensemble, workdir, clip, tmp_path, crop_text="900,44,720,574")
    small = write_video(tmp_path / "small.mp4", np.random.default_rng(0).integers(0, 255, (4, 24, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"small\.mp4: its 32x24 frames do not hold the image region x=10 y=8 w=44 h=32 "
                                         r"\(the run's recordings calibration\); the input is not the kind of recording"):
        run(ensemble, workdir, SourceSpec(str(small), "file"), tmp_path)
    config = ensemble.config.copy_and_resolve_references()
    config.dataset.frame_stack = 3
    with pytest.raises(ValueError, match=r"run\.json: dataset\.frame_stack=3 but the models take 1 stacked frame"):
        run(dataclasses.replace(ensemble, config=config), workdir, clip, tmp_path)
    config = ensemble.config.copy_and_resolve_references()
    config.dataset.builder_config, config.dataset.roi_source = "phantom_smoke", "oracle"
    with pytest.raises(ValueError, match=r"trained on phantom_smoke with ROIs cut by roi_source 'oracle'"):
        run(dataclasses.replace(ensemble, config=config), workdir, clip, tmp_path)
    with pytest.raises(ValueError, match="nothing to write"):
        live.run_live(ensemble, workdir, clip)


def test_the_hand_over_keeps_the_newest_frames_and_hands_on_every_drop_in_order():
    from muscle_jax.streaming.handover import NewestFirst

    handover = NewestFirst(2, account_of=lambda item: ("account", item))
    for item in range(5):
        handover.put(item)
    taken = handover.take(0.0)
    assert taken.dropped == [("account", 0), ("account", 1), ("account", 2)] and taken.items == [3, 4]
    assert not taken.finished and handover.dropped_total == 3 and handover.max_waiting == 2
    handover.put(5)
    failure = SourceError("gone")
    handover.finish(failure)
    taken = handover.take(0.0)
    assert taken.dropped == [] and taken.items == [5] and taken.finished and taken.error is failure


class RegionBrightness:
    """A per-frame estimator beside the ensemble: the mean gray level of the image region (a
    real, if simple, measurement made from `PreparedFrame.gray_HxW`, as the architecture stage
    will measure its columns)."""

    channels = (Channel("region_mean_gray", "gray level"),)

    def __init__(self, crop: Crop):
        self.crop = crop

    def warm_up(self, max_batch: int) -> None:
        pass

    def estimate(self, frames):
        values = [[float(self.crop.apply(f.gray_HxW).mean()) if f.gray_HxW is not None else np.nan] for f in frames]
        return Estimates(np.array(values), tuple({"region_top": rectangle_xy(self.crop)[:2]} for _ in frames))


def test_another_estimator_adds_its_columns_beside_the_ensembles(ensemble, recordings_run, tmp_path):
    frames_NxHxW = synthetic_frames(20)
    video = write_video(tmp_path / "clip.mp4", frames_NxHxW)
    crop = Crop(10, 8, 44, 32)
    result, rows = run(ensemble, recordings_run[0], SourceSpec(str(video), "file", realtime=True), tmp_path,
                       overlay=str(tmp_path / "overlay.mp4"), more_estimators=[RegionBrightness(crop)])
    assert result.outcome.error is None
    assert list(rows[0])[2:-4] == [c for t in TARGETS for c in (t, f"{t}_std")] + ["region_mean_gray"]
    decoded = read_video(video).images_N
    np.testing.assert_allclose([float(r["region_mean_gray"]) for r in rows],
                               [crop.apply(g).mean() for g in decoded], rtol=1e-5)
    assert result.overlay_frames == 20


def test_the_architecture_stage_adds_its_columns_and_lines_as_measured_alone(tmp_path):
    frames = read_video(SHORT_CLIP).images_N[:2]
    prepared = [dataclasses.replace(_prepared(k), gray_HxW=frame) for k, frame in enumerate(frames)]
    estimator = ArchitectureEstimator(region=GASFASTRACK_CROP)
    got = estimator.estimate(prepared)
    alone = measure.measure_frames(list(frames), [GASFASTRACK_CROP] * 2)
    assert [c.name for c in estimator.channels] == [name for name, _ in ARCHITECTURE_CHANNELS]
    np.testing.assert_allclose(got.values_BxC, [[getattr(r, c.name) for c in estimator.channels] for r in alone])
    assert all(r.found for r in alone) and np.isfinite(got.values_BxC).all()
    for lines, result in zip(got.lines, alone):
        assert {"superficial_aponeurosis", "deep_aponeurosis"} <= set(lines)
        assert lines["superficial_aponeurosis"][:, 1].mean() < lines["deep_aponeurosis"][:, 1].mean()


def _prepared(index: int):
    return prepare_module.PreparedFrame(index, index / 61, 0.0, 0.0, OK)
