"""The segmentation CLI and `segment_frames` with the shipped checkpoint on real DL_Track images."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import csv  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from muscle_jax.segment import segment_input  # noqa: E402
from muscle_jax.segmentation import SHIPPED_CHECKPOINT, segment_frames  # noqa: E402
from muscle_jax.segmentation import dl_track, evaluate  # noqa: E402
from muscle_jax.segmentation.inference import cached_model, checkpoint_metrics  # noqa: E402

DL_TRACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "dl_track_aponeurosis"
REAL_NAMES = ("img_00133", "img_00140", "img_00161")  # held-out 512×512 images of one scanner
ROI_HW = (64, 48)


def read_rows(output_dir):
    with open(output_dir / "segmentation.csv") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


@pytest.mark.skipif(not DL_TRACK.is_dir(), reason=f"{DL_TRACK} not present")
def test_shipped_checkpoint_is_small_and_reaches_the_dice_bar_on_held_out_real_images():
    assert SHIPPED_CHECKPOINT.stat().st_size <= 10 * 2**20
    stored = checkpoint_metrics()
    split_config = stored["config"]["data"]
    pairs = dl_track.list_pairs(DL_TRACK)
    train_pairs, validation_pairs = dl_track.split_pairs(pairs, split_config["validation_fraction"], split_config["split_seed"])
    assert [p.name for p in validation_pairs] == stored["validation_names"] and len(validation_pairs) == 64
    assert not {p.name for p in train_pairs} & {p.name for p in validation_pairs}
    # Measured again here, at each image's own size, not read from the checkpoint's metadata.
    model, params, input_hw, _ = cached_model(str(SHIPPED_CHECKPOINT))
    validation = evaluate.mask_metrics(model, params, input_hw, validation_pairs, batch_size=16)
    assert validation["dice_mean"] >= 0.80  # the acceptance
    assert abs(validation["dice_mean"] - stored["validation"]["dice_mean"]) < 1e-3


@pytest.mark.skipif(not DL_TRACK.is_dir(), reason=f"{DL_TRACK} not present")
def test_cli_writes_a_mask_per_input_and_crops_only_where_muscle_is_found(tmp_path):
    input_dir, output_dir = tmp_path / "in", tmp_path / "out"
    input_dir.mkdir()
    for name in REAL_NAMES:
        (input_dir / f"{name}.png").write_bytes((DL_TRACK / "images" / f"{name}.png").read_bytes())
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(input_dir / "blank.png")
    noise = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)
    Image.fromarray(noise).save(input_dir / "noise.png")

    assert segment_input(input_dir, output_dir, None, ROI_HW, batch_size=4) == 5
    rows = read_rows(output_dir)
    assert set(rows) == {*REAL_NAMES, "blank", "noise"}
    for name, row in rows.items():
        mask = np.asarray(Image.open(output_dir / f"{name}.png"))
        assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255}
        roi_path = output_dir / "roi" / f"{name}.png"
        if row["found"] == "True":
            assert np.asarray(Image.open(roi_path)).shape == ROI_HW
            assert float(row["thickness_px"]) > 0 and row["reason"] == ""
            first, last = float(row["column_first"]), float(row["column_last"])
            superficial = np.polyval([float(row[f"superficial_c{i}"]) for i in range(3)], (first + last) / 2)
            deep = np.polyval([float(row[f"deep_c{i}"]) for i in range(3)], (first + last) / 2)
            assert 0 <= superficial < deep < 512
        else:
            assert not roi_path.exists() and row["reason"] and row["thickness_px"] == "nan"
    assert sum(rows[name]["found"] == "True" for name in REAL_NAMES) >= 2
    assert rows["blank"]["found"] == "False" and rows["noise"]["found"] == "False"


@pytest.mark.skipif(not DL_TRACK.is_dir(), reason=f"{DL_TRACK} not present")
def test_cli_names_video_frames_by_index(tmp_path):
    frame = np.asarray(Image.open(DL_TRACK / "images" / f"{REAL_NAMES[0]}.png"))
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.stack([frame] * 3, -1), format="rgb24")))
        container.mux(stream.encode())
    assert segment_input(video, tmp_path / "out", None, ROI_HW, batch_size=4) == 2
    assert set(read_rows(tmp_path / "out")) == {"clip_000000", "clip_000001"}
    assert np.asarray(Image.open(tmp_path / "out" / "clip_000001.png")).shape == (512, 512)


def test_unreadable_image_fails_naming_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    result = subprocess.run(
        [sys.executable, "-m", "muscle_jax.segment", f"--input={bad}", f"--output={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {bad}: not a readable image") and "Traceback" not in result.stderr


def test_frames_of_the_wrong_shape_or_dtype_are_rejected():
    with pytest.raises(ValueError, match="uint8 frames N×H×W"):
        segment_frames(np.zeros((64, 64), np.uint8), ROI_HW)
    with pytest.raises(ValueError, match="uint8 frames N×H×W"):
        segment_frames(np.zeros((1, 64, 64), np.float32), ROI_HW)


def test_segment_frames_flags_blank_frames_with_nan_curves_and_zero_roi():
    result = segment_frames(np.zeros((2, 512, 512), np.uint8), ROI_HW)
    assert result.masks_NxHxW.shape == (2, 512, 512) and result.rois_NxhxW.shape == (2, *ROI_HW)
    assert not result.found_N.any() and all(result.reasons)
    assert np.isnan(result.thickness_px_N).all() and np.isnan(result.superficial_coeffs_NxD).all()
    assert not result.rois_NxhxW.any()
