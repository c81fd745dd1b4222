"""Readers of real recordings: frames, signals, alignment and EMG, on small generated files
and on the GasFasTrack release in ../shared/data."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

from pathlib import Path

import av
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

from muscle_jax.data.readers import align, emg
from muscle_jax.data.readers.dicom import read_dicom, read_dicom_region
from muscle_jax.data.readers.frames import Crop, detect_image_region
from muscle_jax.data.readers.images import read_image_folder
from muscle_jax.data.readers.media import read_frames
from muscle_jax.data.readers.signals import read_gasfastrack_calibration, read_gasfastrack_signals, read_signal_csv
from muscle_jax.data.readers.video import read_video

GASFASTRACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "gasfastrack"


def synthetic_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose brightness ramps with the frame number, inside a still border: a stand-in
    for a B-mode image (it changes) inside a scanner's user interface (it does not)."""
    frames = np.full((num_frames, height, width), 40, np.uint8)
    rng = np.random.default_rng(0)
    for k in range(num_frames):
        frames[k, 8:40, 10:54] = np.clip(rng.normal(100 + 4 * k, 30, (32, 44)), 0, 255)
    return frames


def write_video(path: Path, frames_NxHxW: np.ndarray, fps: int = 30) -> Path:
    """A small H.264 mp4 with its index at the front, so a truncated copy still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames_NxHxW.shape[1:]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0", "g": "4"}
        for gray in frames_NxHxW:
            rgb = np.repeat(gray[..., None], 3, axis=-1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    truncated = path.with_name("truncated_" + path.name)
    truncated.write_bytes(data[: int(len(data) * fraction)])
    return truncated


# ---------------------------------------------------------------- video


def test_video_decodes_every_frame_with_its_time(tmp_path):
    frames = synthetic_frames(12)
    decoded = read_video(write_video(tmp_path / "clip.mp4", frames, fps=30))
    assert decoded.images_N.shape == (12, 48, 64) and decoded.images_N.dtype == np.uint8
    np.testing.assert_array_equal(decoded.index_N, np.arange(12))
    np.testing.assert_allclose(decoded.time_s_N, np.arange(12) / 30)
    assert decoded.declared == 12 and decoded.missing == 0
    # Lossless H.264 through yuv420p: gray comes back within rounding of the colour conversion.
    assert np.abs(decoded.images_N.astype(int) - frames).max() <= 3


def test_unreadable_video_names_the_file(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"noise\.mp4: not a readable video"):
        read_video(path)
    with pytest.raises(FileNotFoundError, match=r"absent\.mp4: no such video"):
        read_video(tmp_path / "absent.mp4")


def test_truncated_video_is_an_error_or_a_counted_skip(tmp_path):
    truncated = truncate(write_video(tmp_path / "clip.mp4", synthetic_frames(30)), 0.6)
    decoded = read_video(truncated)
    assert decoded.declared == 30 and 0 < len(decoded.index_N) < 30
    assert decoded.missing == 30 - len(decoded.index_N)
    # Frames that did decode keep their own numbers: the first ones, in order.
    np.testing.assert_array_equal(decoded.index_N, np.arange(len(decoded.index_N)))
    with pytest.raises(ValueError, match=r"truncated_clip\.mp4: truncated or corrupt: it declares 30 frames"):
        decoded.require_complete(skip_bad_frames=False)
    assert decoded.require_complete(skip_bad_frames=True) is decoded


def test_real_clip_decodes_to_the_declared_frames_at_61_fps():
    decoded = read_video(GASFASTRACK / "clips" / "p6_isokinetic500_01_push_01.mp4")
    assert decoded.images_N.shape == (59, 624, 1148) and decoded.missing == 0
    np.testing.assert_allclose(np.diff(decoded.time_s_N), 1 / 61, rtol=1e-6)


# ---------------------------------------------------------------- image region


def test_crop_from_matlab_rect_and_bounds():
    crop = Crop.from_matlab_rect([215, 45, 720, 574])
    assert crop == Crop(214, 44, 720, 574)
    assert crop.apply(np.zeros((624, 1148), np.uint8)).shape == (574, 720)
    with pytest.raises(ValueError, match=r"clip\.mp4: crop .* does not fit a 700x600 frame"):
        crop.apply(np.zeros((600, 700), np.uint8), "clip.mp4")


def test_detected_region_is_the_part_that_moves():
    assert detect_image_region(synthetic_frames(10)) == Crop(10, 8, 44, 32)
    with pytest.raises(ValueError, match="do not change"):
        detect_image_region(np.zeros((5, 20, 20), np.uint8))


def test_detected_region_matches_the_gasfastrack_calibration():
    calibration, mm_per_px = read_gasfastrack_calibration(GASFASTRACK / "p6_params.mat")
    assert calibration == Crop(214, 44, 720, 574) and mm_per_px == pytest.approx(0.0883, abs=1e-4)
    frames = read_video(GASFASTRACK / "clips" / "p6_isokinetic500_01_push_01.mp4").images_N
    detected = detect_image_region(frames)
    for got, want in zip((detected.x, detected.y, detected.x + detected.w, detected.y + detected.h),
                         (214, 44, 934, 618)):
        assert abs(got - want) <= 6, (detected, calibration)


# ---------------------------------------------------------------- DICOM and image folders


def write_dicom(path: Path, frames_NxHxW: np.ndarray, frame_time_ms: float, region: Crop | None = None) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.NumberOfFrames = len(frames_NxHxW)
    ds.Rows, ds.Columns = frames_NxHxW.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = frame_time_ms
    ds.PixelData = frames_NxHxW.tobytes()
    if region is not None:
        item = pydicom.Dataset()
        item.RegionDataType = 1
        item.RegionLocationMinX0, item.RegionLocationMinY0 = region.x, region.y
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = region.x + region.w - 1, region.y + region.h - 1
        ds.SequenceOfUltrasoundRegions = [item]
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_dicom_cine_frames_times_and_region(tmp_path):
    frames = synthetic_frames(6)
    path = write_dicom(tmp_path / "cine.dcm", frames, frame_time_ms=20.0, region=Crop(10, 8, 44, 32))
    decoded = read_frames(path)
    np.testing.assert_array_equal(decoded.images_N, frames)
    np.testing.assert_allclose(decoded.time_s_N, np.arange(6) * 0.02)
    assert read_dicom_region(path) == Crop(10, 8, 44, 32)
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom file at all")
    with pytest.raises(ValueError, match=r"bad\.dcm: not a readable DICOM"):
        read_dicom(bad)


def test_image_folder_natural_order_and_bad_files(tmp_path):
    frames = synthetic_frames(11)
    for k, frame in enumerate(frames):
        Image.fromarray(np.repeat(frame[..., None], 3, -1)).save(tmp_path / f"frame_{k}.png")
    decoded = read_image_folder(tmp_path, fps=50.0)
    np.testing.assert_array_equal(decoded.images_N, frames)  # frame_10 after frame_9
    np.testing.assert_allclose(decoded.time_s_N, np.arange(11) / 50)
    (tmp_path / "frame_5.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match=r"frame_5\.png: not a readable image"):
        read_image_folder(tmp_path)
    skipped = read_image_folder(tmp_path, skip_bad_frames=True)
    assert skipped.missing == 1 and 5 not in skipped.index_N and len(skipped.index_N) == 10
    with pytest.raises(ValueError, match=r"empty: holds no image files"):
        (tmp_path / "empty").mkdir()
        read_image_folder(tmp_path / "empty")


# ---------------------------------------------------------------- signals


def test_csv_signals_and_their_errors(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("time_s,angle_deg,torque_nm\n0.0,1.5,10\n0.01,,11\n0.02,nan,12\n")
    signals = read_signal_csv(good, ("angle_deg",))
    np.testing.assert_array_equal(signals.values["torque_nm"], [10, 11, 12])
    assert np.isnan(signals.values["angle_deg"][1:]).all()  # NaN is read; whether it may be used is the caller's
    with pytest.raises(KeyError, match=r"good\.csv: missing column\(s\) emg_v"):
        read_signal_csv(good, ("emg_v",))
    with pytest.raises(KeyError, match=r"good\.csv: has no signal 'emg_v'"):
        signals.column("emg_v")
    words = tmp_path / "words.csv"
    words.write_text("time_s,angle_deg\n0.0,1.0\n0.01,high\n")
    with pytest.raises(ValueError, match=r"words\.csv: line 3, column 'angle_deg': 'high' is not a number"):
        read_signal_csv(words, ("angle_deg",))
    backwards = tmp_path / "backwards.csv"
    backwards.write_text("time_s,angle_deg\n0.0,1.0\n0.02,1.0\n0.01,1.0\n")
    with pytest.raises(ValueError, match=r"backwards\.csv: time_s does not increase at data row 3"):
        read_signal_csv(backwards, ())


def test_gasfastrack_signals_in_project_conventions():
    import scipy.io

    signals = read_gasfastrack_signals(GASFASTRACK / "clips" / "AGR003_push_data.mat")
    assert len(signals) == 24
    raw = scipy.io.loadmat(str(GASFASTRACK / "clips" / "AGR003_push_data.mat"), squeeze_me=True,
                           struct_as_record=False)["clips"].p6_passive_ROM_01.push_01
    clip = signals["p6_passive_ROM_01_push_01"]
    np.testing.assert_array_equal(clip.values["angle_deg"], -raw.POS)  # POS is positive in plantarflexion
    np.testing.assert_array_equal(clip.values["torque_nm"], raw.TOR)
    np.testing.assert_array_equal(clip.frame_samples_F, raw.frameInds.astype(int) - 1)
    # Passive torque (plantarflexion, positive) is largest where the ankle is most dorsiflexed.
    assert np.corrcoef(clip.values["angle_deg"], clip.values["torque_nm"])[0, 1] > 0.85
    assert max(signals["p6_isometric_max_01_push_01"].values["torque_nm"]) > 100


# ---------------------------------------------------------------- alignment


def test_alignment_by_index_and_by_time():
    frame_samples = np.array([0, 2, 3, 5])
    np.testing.assert_array_equal(align.positions_from_index(frame_samples, np.array([0, 2, 3]), 4, "v", "i"), [0, 3, 5])
    with pytest.raises(ValueError, match=r"clip\.mp4: the video has 5 frames but idx indexes 4"):
        align.positions_from_index(frame_samples, np.arange(5), 5, "clip.mp4", "idx")
    signal_time = np.arange(10) * 0.1
    positions = align.positions_from_times(np.array([0.0, 0.25, 0.9, 1.2]), signal_time)
    np.testing.assert_allclose(positions[:3], [0.0, 2.5, 9.0])
    assert np.isnan(positions[3])  # past the signal's end: not extrapolated
    values = np.array([0.0, 10.0, np.nan, 30.0])
    np.testing.assert_allclose(align.values_at(values, np.array([0.5, 1.0, 3.0])), [5.0, 10.0, 30.0])
    assert np.isnan(align.values_at(values, np.array([1.5, np.nan]))).all()


# ---------------------------------------------------------------- EMG


def test_emg_envelope_follows_the_burst_amplitude():
    rate_hz = 2000.0
    time_s = np.arange(0, 3, 1 / rate_hz)
    amplitude_v = np.where((time_s > 1) & (time_s < 2), 1e-3, 1e-4)
    carrier = np.random.default_rng(0).standard_normal(len(time_s))
    envelope = emg.emg_envelope(amplitude_v * carrier, rate_hz, {"lowpass_hz": 6.0})
    inside, outside = envelope[(time_s > 1.3) & (time_s < 1.7)].mean(), envelope[time_s > 2.5].mean()
    # Mean |x| of band-limited Gaussian noise is sqrt(2/pi)·sigma; the band keeps ~43 % of its power.
    assert inside == pytest.approx(1e-3 * np.sqrt(2 / np.pi) * np.sqrt(430 / 1000), rel=0.15)
    assert inside / outside == pytest.approx(10, rel=0.2)
    with pytest.raises(ValueError, match=r"sensor: raw EMG sampled at 500.0 Hz, below the 1000 Hz"):
        emg.emg_envelope(carrier, 500.0, source="sensor")
    with pytest.raises(ValueError, match=r"sensor: raw EMG is NaN"):
        emg.emg_envelope(np.where(time_s > 1, np.nan, carrier), rate_hz, source="sensor")
