"""Layouts of real recordings → trials: the GasFasTrack release and the generic `recordings`
layout, including every kind of bad input the issue names."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from muscle_jax.data import recordings
from test_readers import GASFASTRACK, read_video, synthetic_frames, truncate, write_video

ROI_HW = (16, 20)
FPS = 30


def signal_table(duration_s: float = 0.5, rate_hz: float = 1000.0) -> dict[str, np.ndarray]:
    """Signals that are easy to check at any frame: angle = 100·t, torque = 50 − 10·t, raw EMG noise."""
    time_s = np.arange(0, duration_s, 1 / rate_hz)
    return {
        "time_s": time_s,
        "angle_deg": 100 * time_s,
        "torque_nm": 50 - 10 * time_s,
        "emg_raw_v": 1e-3 * np.random.default_rng(1).standard_normal(len(time_s)),
    }


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    names = list(columns)
    lines = [",".join(names)] + [",".join(repr(float(columns[n][i])) for n in names) for i in range(len(columns[names[0]]))]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_layout(root: Path, num_frames: int = 12) -> Path:
    """Two participants: a video trial, and an image-folder trial timed by a frames file."""
    (root / "P01").mkdir(parents=True)
    (root / "P02" / "walk").mkdir(parents=True)
    (root / recordings.CALIBRATION_FILE).write_text(json.dumps({"crop_xywh": [10, 8, 44, 32]}))
    frames = synthetic_frames(num_frames)
    write_video(root / "P01" / "ramp.mp4", frames, fps=FPS)
    write_csv(root / "P01" / "ramp.csv", signal_table())
    for k, frame in enumerate(frames[:5]):
        Image.fromarray(frame).save(root / "P02" / "walk" / f"{k}.png")
    write_csv(root / "P02" / "walk.csv", signal_table())
    write_csv(root / "P02" / "walk.frames.csv", {"frame": np.arange(5.0), "time_s": 0.1 + 0.05 * np.arange(5)})
    return root


def only_trial(root: Path, participant: str = "P01", **kwargs) -> dict:
    trial = next(t for t in recordings.list_trials("recordings", root) if t.name.startswith(participant))
    return recordings.load_trial(trial, ROI_HW, "calibration", kwargs.pop("targets", ("angle_deg", "torque_nm")), **kwargs)


def test_recordings_layout_yields_aligned_trials(tmp_path):
    root = make_layout(tmp_path)
    trials = list(recordings.iter_trials("recordings", root, ROI_HW, "calibration", ("angle_deg", "torque_nm", "emg_v")))
    assert [(t["name"], t["participant"], t["trial"]) for t in trials] == [("P01_ramp", 0, 0), ("P02_walk", 1, 0)]
    video, images = trials
    assert video["image"].shape == (12, 16, 20, 1) and video["image"].dtype == np.uint8
    np.testing.assert_array_equal(video["frame"], np.arange(12))
    np.testing.assert_allclose(video["time_s"], np.arange(12) / FPS, atol=1e-6)
    np.testing.assert_allclose(video["angle_deg"], 100 * np.arange(12) / FPS, atol=1e-3)
    np.testing.assert_allclose(video["torque_nm"], 50 - 10 * np.arange(12) / FPS, atol=1e-4)
    assert video["emg_v"].dtype == np.float32 and np.all(video["emg_v"] > 0) and video["skipped_frames"] == 0
    # The calibration crop holds the moving part only: its mean brightness rises with the ramp.
    assert np.all(np.diff(video["image"].mean(axis=(1, 2, 3))) > 0)
    np.testing.assert_allclose(images["angle_deg"], 100 * (0.1 + 0.05 * np.arange(5)), atol=1e-3)


def test_declared_target_missing_from_the_recording_is_an_error(tmp_path):
    root = make_layout(tmp_path)
    assert recordings.available_targets("recordings", root) == ("angle_deg", "torque_nm", "emg_v")
    table = signal_table()
    del table["emg_raw_v"]
    write_csv(root / "P01" / "ramp.csv", table)
    assert recordings.available_targets("recordings", root) == ("angle_deg", "torque_nm")
    with pytest.raises(KeyError, match=r"ramp\.csv: missing column\(s\) emg_v"):
        only_trial(root, targets=("angle_deg", "emg_v"))


def test_non_numeric_signal_is_an_error_naming_file_line_and_column(tmp_path):
    root = make_layout(tmp_path)
    lines = (root / "P01" / "ramp.csv").read_text().splitlines()
    cells = lines[7].split(",")
    cells[1] = "n/a?"
    lines[7] = ",".join(cells)
    (root / "P01" / "ramp.csv").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"ramp\.csv: line 8, column 'angle_deg': 'n/a\?' is not a number"):
        only_trial(root)


def test_nan_signal_is_an_error_or_a_counted_skip(tmp_path, caplog):
    root = make_layout(tmp_path)
    table = signal_table()
    table["torque_nm"][(table["time_s"] > 0.095) & (table["time_s"] < 0.105)] = np.nan  # frame 3 is at 0.1 s
    write_csv(root / "P01" / "ramp.csv", table)
    with pytest.raises(ValueError, match=r"ramp\.mp4: signal 'torque_nm' in .*ramp\.csv is NaN at 1 frame\(s\) \(3\)"):
        only_trial(root)
    with caplog.at_level(logging.WARNING, logger="muscle_jax.data.recordings"):
        trial = only_trial(root, skip_bad_frames=True)
    assert trial["skipped_frames"] == 1 and "skipped 1 of 12 frames" in caplog.text
    np.testing.assert_array_equal(trial["frame"], [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11])
    np.testing.assert_allclose(trial["angle_deg"], 100 * trial["frame"] / FPS, atol=1e-3)  # still aligned


def test_frames_outside_the_signal_are_an_error(tmp_path):
    root = make_layout(tmp_path)
    write_csv(root / "P01" / "ramp.csv", signal_table(duration_s=0.2))
    with pytest.raises(ValueError, match=r"ramp\.mp4: 6 frame\(s\) \(6, 7, 8, 9, 10, …\) lie outside the time span"):
        only_trial(root)


def test_frame_count_disagreeing_with_the_signal_index_is_an_error(tmp_path):
    root = make_layout(tmp_path)
    write_csv(root / "P01" / "ramp.frames.csv", {"frame": np.arange(10.0), "sample": 33.0 * np.arange(10)})
    with pytest.raises(ValueError, match=r"ramp\.mp4: the video has 12 frames but .*ramp\.frames\.csv indexes 10"):
        only_trial(root)
    write_csv(root / "P01" / "ramp.frames.csv", {"frame": np.arange(12.0), "sample": 33.0 * np.arange(12)})
    np.testing.assert_allclose(only_trial(root)["angle_deg"], 100 * 0.033 * np.arange(12), atol=1e-3)


def test_truncated_video_is_an_error_or_a_counted_skip(tmp_path):
    root = make_layout(tmp_path, num_frames=30)
    video = root / "P01" / "ramp.mp4"
    truncate(video, 0.6).replace(video)
    with pytest.raises(ValueError, match=r"ramp\.mp4: truncated or corrupt: it declares 30 frames"):
        only_trial(root)
    trial = only_trial(root, skip_bad_frames=True)
    assert trial["skipped_frames"] == 30 - len(trial["frame"]) > 0
    np.testing.assert_allclose(trial["angle_deg"], 100 * trial["frame"] / FPS, atol=1e-3)


def test_incomplete_layouts_name_the_folder_or_file(tmp_path):
    root = make_layout(tmp_path)
    (root / "P03").mkdir()
    with pytest.raises(ValueError, match=r"P03: participant folder has no trials"):
        recordings.list_trials("recordings", root)
    (root / "P03").rmdir()
    (root / "P01" / "ramp.csv").rename(root / "P01" / "other.csv")
    with pytest.raises(FileNotFoundError, match=r"P01/ramp\.csv: no signals for the trial ramp\.mp4"):
        recordings.list_trials("recordings", root)
    with pytest.raises(ValueError, match=r"walk: has no frame timestamps"):
        (root / "P01" / "other.csv").rename(root / "P01" / "ramp.csv")
        (root / "P02" / "walk.frames.csv").unlink()
        only_trial(root, participant="P02")


def test_one_real_gasfastrack_clip_is_aligned_by_its_frame_index():
    trials = recordings.list_trials("gasfastrack", GASFASTRACK)
    assert len(trials) == 24 and {t.participant for t in trials} == {0} and [t.trial for t in trials] == list(range(24))
    trial = next(t for t in trials if t.name == "p6_isokinetic500_01_push_01")
    example = recordings.load_trial(trial, ROI_HW, "calibration", recordings.GASFASTRACK_TARGETS)
    raw = scipy.io.loadmat(str(GASFASTRACK / "clips" / "AGR003_push_data.mat"), squeeze_me=True,
                           struct_as_record=False)["clips"].p6_isokinetic500_01.push_01
    samples = raw.frameInds.astype(int) - 1
    assert example["image"].shape == (len(samples), *ROI_HW, 1)
    np.testing.assert_array_equal(example["frame"], np.arange(len(samples)))
    np.testing.assert_allclose(example["angle_deg"], -raw.POS[samples], rtol=1e-6)
    np.testing.assert_allclose(example["torque_nm"], raw.TOR[samples], rtol=1e-6)
    assert set(example) == {"image", "angle_deg", "torque_nm", "time_s", "frame", "participant", "trial", "name",
                            "skipped_frames"}


def test_segmentation_rois_and_frames_without_muscle(tmp_path):
    """Real GasFasTrack frames through the segmentation stage; a blank frame has no muscle."""
    from muscle_jax.segmentation import SHIPPED_CHECKPOINT

    if not Path(SHIPPED_CHECKPOINT).is_file():
        pytest.skip(f"the segmentation stage's checkpoint {SHIPPED_CHECKPOINT} is not in this checkout")
    real = read_video(GASFASTRACK / "clips" / "p6_isokinetic500_01_push_01.mp4").images_N[:4]
    frames = np.concatenate([real[:2], np.zeros_like(real[:1]), real[2:]])
    root = tmp_path / "layout"
    (root / "P01").mkdir(parents=True)
    (root / recordings.CALIBRATION_FILE).write_text(json.dumps({"crop_xywh": [214, 44, 720, 574]}))
    write_video(root / "P01" / "push.mp4", frames, fps=FPS)
    write_csv(root / "P01" / "push.csv", signal_table())
    trial = recordings.list_trials("recordings", root)[0]
    with pytest.raises(ValueError, match=r"push\.mp4: no ROI found by the segmentation stage in 1 frame\(s\) \(2\)"):
        recordings.load_trial(trial, ROI_HW, "segmentation", ("angle_deg",))
    example = recordings.load_trial(trial, ROI_HW, "segmentation", ("angle_deg",), skip_bad_frames=True)
    assert example["skipped_frames"] == 1
    np.testing.assert_array_equal(example["frame"], [0, 1, 3, 4])
    assert example["image"].shape == (4, *ROI_HW, 1) and example["image"].mean() > 10


def test_without_a_calibration_the_image_region_is_detected(tmp_path):
    root = make_layout(tmp_path)
    calibrated = only_trial(root)
    (root / recordings.CALIBRATION_FILE).unlink()
    detected = only_trial(root)
    np.testing.assert_array_equal(detected["image"], calibrated["image"])
