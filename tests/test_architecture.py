"""The architecture stage: TimTrack's geometry, line evidence, the image region, the stage on
drawn images of known geometry and on labelled real images, bad input, smoothing and the CLI."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import csv  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from scipy import ndimage  # noqa: E402
from test_readers import truncate, write_video  # noqa: E402

from muscle_jax.architecture import aponeurosis_network, command, geometry, measure, observers, orientation, smoothing  # noqa: E402
from muscle_jax.architecture.region import find_clip_region, find_image_region  # noqa: E402
from muscle_jax.data.readers.frames import Crop  # noqa: E402
from muscle_jax.data.readers.images import read_gray_image  # noqa: E402
from muscle_jax.segmentation.curves import fit_aponeuroses  # noqa: E402
from muscle_jax.segmentation.inference import cached_model  # noqa: E402
from muscle_jax.segmentation.network import SHIPPED_CHECKPOINT, probabilities_BxHxW  # noqa: E402

TIMTRACK = observers.TIMTRACK_DIR
needs_timtrack = pytest.mark.skipif(not TIMTRACK.is_dir(), reason=f"{TIMTRACK} not present")


def drawn_muscle(alpha=18.0, beta=-3.0, gamma=4.0, height=420, width=520, superficial_row=90, deep_row=330,
                 seed=0, muscle=True, deep_band_px=(10.0, 10.0)) -> np.ndarray:
    """A B-mode-like picture with known geometry: speckle, a bright skin line, two aponeurosis
    bands whose inner edges are straight lines at TimTrack angles beta and gamma through the
    given rows at the centre column, and broken bright fascicles at angle alpha. The
    superficial band is 10 px thick, the deep one `deep_band_px` thick at the left and right
    edges (linearly in between)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    centre = (width - 1) / 2
    superficial = superficial_row + geometry.slope_rows_per_column(beta) * (cols - centre)
    deep = deep_row + geometry.slope_rows_per_column(gamma) * (cols - centre)
    speckle = np.abs(ndimage.gaussian_filter(rng.normal(size=rows.shape), (0.8, 1.6))
                     + 1j * ndimage.gaussian_filter(rng.normal(size=rows.shape), (0.8, 1.6)))
    echo = np.full(rows.shape, 0.35)
    if muscle:
        offsets = cols * np.sin(np.radians(alpha)) + rows * np.cos(np.radians(alpha))
        stripes = np.exp(-0.5 * ((offsets % 14 - 7) / 1.3) ** 2)
        pieces = ndimage.gaussian_filter(rng.random(rows.shape), 6) > 0.48
        echo = echo + 1.3 * stripes * pieces * ((rows > superficial + 5) & (rows < deep - 5))
        echo = echo + 2.5 * ((rows > superficial - 10) & (rows <= superficial + 1))
        deep_band = np.interp(cols, (0, width - 1), deep_band_px)
        echo = echo + 2.5 * ((rows >= deep - 1) & (rows < deep + deep_band))
    echo = echo + 1.5 * (rows < 8)
    picture = 255 * np.clip(np.log1p(3 * echo * speckle) / np.log1p(9.0), 0, 1)
    return picture.astype(np.uint8)


def true_thickness_at(column, beta, gamma, width=520, superficial_row=90, deep_row=330):
    centre = (width - 1) / 2
    return (deep_row + geometry.slope_rows_per_column(gamma) * (column - centre)) - (
        superficial_row + geometry.slope_rows_per_column(beta) * (column - centre))


# ---------------------------------------------------------------- geometry and line evidence


def test_timtrack_sign_rule_pennation_and_length():
    # A line rising to the right (rows decrease as columns increase) is positive.
    assert geometry.angle_deg(-np.tan(np.radians(20.0))) == pytest.approx(20.0)
    assert geometry.angle_deg(0.1) < 0
    assert geometry.fascicle_length(100.0, 25.0, -5.0) == pytest.approx(100.0 / np.sin(np.radians(30.0)))
    assert np.isnan(geometry.fascicle_length(100.0, -5.0, 0.0))
    # Fascicles falling to the right: the mirrored image's angles, pennation positive.
    assert geometry.canonical_orientation(-20.0, 2.0, -4.0) == (20.0, -2.0, 4.0, True)
    assert geometry.canonical_orientation(20.0, -2.0, 4.0) == (20.0, -2.0, 4.0, False)


def test_the_drawn_fascicle_runs_from_one_aponeurosis_to_the_other_at_the_measured_angle():
    superficial, deep, column_range = np.array([0.05, 40.0]), np.array([-0.05, 200.0]), (0.0, 400.0)
    ends = geometry.fascicle_through(superficial, deep, column_range, 30.0, 200.0)
    (x0, y0), (x1, y1) = ends
    assert geometry.angle_deg((y1 - y0) / (x1 - x0)) == pytest.approx(30.0)
    assert 0.5 * (x0 + x1) == pytest.approx(200.0)
    # Rising to the right: the left end lies on the deep aponeurosis, the right end on the superficial one.
    assert y0 == pytest.approx(geometry.row_on_curve(deep, column_range, 200.0))
    assert y1 == pytest.approx(geometry.row_on_curve(superficial, column_range, 200.0))
    assert geometry.fascicle_through(superficial, deep, column_range, 0.0, 200.0) is None


def test_fascicle_centred_column_centres_the_fascicle_between_the_aponeuroses():
    superficial, deep = np.array([0.02, 50.0]), np.array([-0.05, 300.0])
    alpha = 20.0
    column = geometry.fascicle_centred_column(superficial, deep, alpha, 200.0)
    # The fascicle through the deep aponeurosis at `column` meets the superficial one as far on the other side.
    slope = geometry.slope_rows_per_column(alpha)
    intercept = np.polyval(deep, column) - slope * column
    other = (intercept - superficial[1]) / (superficial[0] - slope)
    assert 0.5 * (column + other) == pytest.approx(200.0)
    assert column < 200.0 < other  # rising to the right: the deep end is on the left


def test_row_on_curve_continues_along_the_tangent_beyond_its_columns():
    coeffs = np.array([0.001, -0.2, 100.0])
    assert geometry.row_on_curve(coeffs, (50.0, 150.0), 100.0) == pytest.approx(np.polyval(coeffs, 100.0))
    tangent = np.polyval(coeffs, 150.0) + np.polyval(np.polyder(coeffs), 150.0) * 50.0
    assert geometry.row_on_curve(coeffs, (50.0, 150.0), 200.0) == pytest.approx(tangent)


@pytest.mark.parametrize("angle", [17.0, -23.0, 4.5])
def test_line_evidence_finds_the_direction_of_drawn_lines(angle):
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[0:160, 0:240].astype(np.float64)
    offsets = cols * np.sin(np.radians(angle)) + rows * np.cos(np.radians(angle))
    lines = np.exp(-0.5 * ((offsets % 9 - 4.5) / 1.0) ** 2) * (rng.random(rows.shape) > 0.3)
    image = lines + 0.3 * rng.random(rows.shape)
    image[70:74] += 2.0  # a horizontal band, excluded as an aponeurosis direction
    field = orientation.ridge_strength_HxW(image, (1.0,))
    region = np.ones(image.shape, bool)
    found, sharpness = orientation.dominant_line_angle(field, region, (-60.0, 60.0), ((0.0, 3.0),))
    assert found == pytest.approx(angle, abs=0.5)
    assert sharpness > 2.0
    assert np.isnan(orientation.dominant_line_angle(field, np.zeros(image.shape, bool), (-60.0, 60.0))[0])


def test_noise_has_little_line_evidence_and_a_flat_field_none():
    rng = np.random.default_rng(2)
    field = orientation.ridge_strength_HxW(rng.random((160, 240)), (1.0,))
    _, sharpness = orientation.dominant_line_angle(field, np.ones(field.shape, bool), (-60.0, 60.0))
    assert 1.0 <= sharpness < 1.5  # drawn lines give > 2 (test above)
    flat = np.ones((160, 240))
    _, none = orientation.dominant_line_angle(flat, np.ones(flat.shape, bool), (-60.0, 60.0))
    assert none < measure.default_config().min_sharpness


# ---------------------------------------------------------------- the image region


def test_image_region_of_a_drawn_screen_capture():
    capture = np.full((400, 600), 45, np.uint8)
    capture[50:350, 120:520] = drawn_muscle(height=300, width=400)
    draw = ImageDraw.Draw(image := Image.fromarray(capture))
    draw.text((8, 10), "LOGIQ E9  MSK  Gn 33  FPS 16", fill=230)
    for k in range(8):
        draw.text((540, 60 + 35 * k), str(k), fill=255)
    draw.rectangle([20, 120, 40, 300], fill=200)  # a grey-scale bar
    region = find_image_region(np.asarray(image))
    assert region is not None
    assert abs(region.x - 120) <= 3 and abs(region.y - 50) <= 3
    assert abs(region.x + region.w - 520) <= 3 and abs(region.y + region.h - 350) <= 3
    assert find_image_region(np.full((300, 400), 90, np.uint8)) is None


@needs_timtrack
def test_image_region_of_a_real_screen_capture_holds_timtracks_region():
    # TimTrack's own analysis of this capture format cropped columns 245-988 and rows 48-688 (1-based).
    region = find_image_region(read_gray_image(TIMTRACK / "images/dataset4/SampleA/GM_T_1.png"))
    assert region.x <= 244 and region.y <= 47 and region.x + region.w >= 988 and region.y + region.h >= 688
    assert region.x >= 244 - 15 and region.x + region.w <= 988 + 15  # and not much of the interface around it


def test_clip_region_uses_the_pixels_that_change():
    frames = np.full((6, 120, 160), 30, np.uint8)
    rng = np.random.default_rng(3)
    frames[:, 20:100, 30:140] = rng.integers(0, 255, (6, 80, 110))
    assert find_clip_region(frames) == Crop(30, 20, 110, 80)


# ---------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def drawn_results():
    pictures = [drawn_muscle(), drawn_muscle(alpha=-24.0, beta=2.0, gamma=-5.0, seed=1)]
    return pictures, measure.measure_frames(pictures)


def test_resizes_on_the_host_equal_the_networks_own(drawn_results):
    picture = drawn_results[0][0]
    model, params, input_hw, _ = cached_model(str(SHIPPED_CHECKPOINT))
    expected = np.asarray(probabilities_BxHxW(model, params, jnp.asarray(picture)[None], input_hw))[0]
    mine = aponeurosis_network.probabilities([picture], str(SHIPPED_CHECKPOINT))[0]
    np.testing.assert_allclose(mine, expected, atol=2e-4)


def test_drawn_geometry_is_measured_within_tolerance(drawn_results):
    """Tolerances: 0.5° for angles, 1 % for thickness (the drawn lines are straight and exact)."""
    _, (rising, falling) = drawn_results
    assert rising.found and not rising.mirrored
    assert rising.fascicle_angle_deg == pytest.approx(18.0, abs=0.5)
    assert rising.superficial_aponeurosis_angle_deg == pytest.approx(-3.0, abs=0.5)
    assert rising.deep_aponeurosis_angle_deg == pytest.approx(4.0, abs=0.5)
    assert rising.pennation_deg == pytest.approx(21.0, abs=0.7)
    # Thickness at the left edge of the image, between the inner edges of the bands.
    assert rising.thickness_px == pytest.approx(true_thickness_at(0, -3.0, 4.0), rel=0.01)
    assert rising.fascicle_length_px == pytest.approx(
        geometry.fascicle_length(rising.thickness_px, 18.0, -3.0), rel=0.04)
    # Fascicles falling to the right: reported for the mirrored image (TimTrack's flip), thickness at the right edge.
    assert falling.found and falling.mirrored
    assert falling.fascicle_angle_deg == pytest.approx(24.0, abs=0.5)
    assert falling.superficial_aponeurosis_angle_deg == pytest.approx(-2.0, abs=0.5)
    assert falling.deep_aponeurosis_angle_deg == pytest.approx(5.0, abs=0.5)
    assert falling.thickness_px == pytest.approx(true_thickness_at(519, 2.0, -5.0), rel=0.01)


@needs_timtrack
def test_angle_conventions_match_the_observers_on_real_images():
    names = ["dataset1/S2/S2_R20_step_125.png", "dataset2/jumping/gastroc_jumping_050.png",
             "dataset4/SampleB/GM_P_5.bmp", "dataset4/SampleA/GM_T_12.png"]
    labels = {image.image: image for image in observers.read_labels()}
    results = measure.measure_frames([read_gray_image(TIMTRACK / "images" / name) for name in names])
    for name, result in zip(names, results, strict=True):
        label = labels[name].values
        assert result.found, (name, result.reason)
        assert result.fascicle_angle_deg == pytest.approx(label["fascicle_angle_deg"].mean(), abs=3.0), name
        assert result.superficial_aponeurosis_angle_deg == pytest.approx(
            label["superficial_aponeurosis_angle_deg"].mean(), abs=1.5), name
        assert result.thickness_px == pytest.approx(label["thickness"].mean(), rel=0.06), name
        # Dataset 4's observers worked on mirrored images (TimTrack's flip_image), so do we.
        assert result.mirrored == name.startswith("dataset4"), name
        if np.isfinite(label["deep_aponeurosis_angle_deg"]).all():
            assert np.sign(result.deep_aponeurosis_angle_deg) == np.sign(label["deep_aponeurosis_angle_deg"].mean())


def test_the_deep_aponeurosis_is_the_strong_band_not_a_streak_as_wide():
    """A thin, broken intramuscular streak spanning 75 % of the deep aponeurosis' columns lies
    between the aponeuroses; the deep one is the thick band that holds the mask below it."""
    mask = np.zeros((256, 300), bool)
    mask[20:28, :] = True  # superficial aponeurosis
    for start in range(30, 250, 35):
        mask[100:103, start : start + 30] = True  # streak: seven 30-column pieces, 5 apart
    mask[180:190, :280] = True  # deep aponeurosis
    fit = fit_aponeuroses(mask, measure.default_config().roi)
    assert fit.found, fit.reason
    assert np.polyval(fit.deep_coeffs, 150.0) == pytest.approx(184.5, abs=1.0)


def test_thickness_reads_the_inner_edges_where_it_is_measured():
    """The deep aponeurosis thickens from 6 px at the left edge to 30 px at the right (its inner
    edge straight): its band's centre line no longer runs parallel to the inner edge, and an
    edge read over all of it misses the one at the left edge, where thickness is measured.
    Tolerance 2 % (the drawn test above: 1 % for bands of even thickness)."""
    height, width, superficial_row, deep_row = 256, 320, 50, 200
    picture = drawn_muscle(height=height, width=width, superficial_row=superficial_row, deep_row=deep_row,
                           deep_band_px=(6.0, 30.0))
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    centre = (width - 1) / 2
    superficial = superficial_row + geometry.slope_rows_per_column(-3.0) * (cols - centre)
    deep = deep_row + geometry.slope_rows_per_column(4.0) * (cols - centre)
    deep_band = np.interp(cols, (0, width - 1), (6.0, 30.0))
    probabilities = (((rows > superficial - 10) & (rows <= superficial + 1))
                     | ((rows >= deep - 1) & (rows < deep + deep_band))).astype(np.float32)
    truth = true_thickness_at(0, -3.0, 4.0, width=width, superficial_row=superficial_row, deep_row=deep_row)
    config = measure.default_config()
    result = measure.measure_region(picture.astype(np.float32), probabilities, Crop(0, 0, width, height), config)
    assert result.found, result.reason
    assert result.thickness_px == pytest.approx(truth, rel=0.02)
    config.inner_edge_share = 1.0
    whole_length = measure.measure_region(picture.astype(np.float32), probabilities, Crop(0, 0, width, height), config)
    assert abs(whole_length.thickness_px / truth - 1) > 0.03


def test_columns_near_a_column_stay_inside_the_range():
    assert measure.columns_near((100.0, 300.0), 0.0, 0.25) == (100.0, 150.0)
    assert measure.columns_near((100.0, 300.0), 319.0, 0.25) == (250.0, 300.0)
    assert measure.columns_near((100.0, 300.0), 200.0, 0.25) == (175.0, 225.0)
    assert measure.columns_near((100.0, 300.0), 110.0, 1.0) == (100.0, 300.0)


def test_blank_noise_and_no_muscle_are_not_found_with_a_reason():
    rng = np.random.default_rng(4)
    blank = np.zeros((300, 400), np.uint8)
    noise = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    speckle_only = drawn_muscle(muscle=False, height=300, width=400)
    results = measure.measure_frames([blank, noise, speckle_only])
    assert [r.found for r in results] == [False, False, False]
    assert "blank" in results[0].reason
    assert all(r.reason for r in results)
    assert all(np.isnan(r.fascicle_angle_deg) and np.isnan(r.thickness_px) for r in results)


# ---------------------------------------------------------------- smoothing


def test_kalman_smoother_reduces_noise_without_lag_and_keeps_gaps():
    rng = np.random.default_rng(5)
    time_s = np.arange(300) / 60.0
    truth = 20.0 + 8.0 * np.sin(2 * np.pi * 0.5 * time_s)
    measured = truth + rng.normal(0.0, 1.0, truth.shape)
    measured[100:105] = np.nan
    noise = smoothing.NoiseModel(measurement_sd=1.0, acceleration_sd=60.0)
    smoothed = smoothing.kalman_smoother(time_s, measured, noise)
    causal = smoothing.kalman_filter(time_s, measured, noise)
    ok = np.isfinite(measured)
    assert np.isnan(smoothed[100:105]).all() and np.isnan(causal[100:105]).all()
    raw_error = np.sqrt(np.mean((measured[ok] - truth[ok]) ** 2))
    assert np.sqrt(np.mean((smoothed[ok] - truth[ok]) ** 2)) < 0.6 * raw_error
    # No lag: the smoothed curve matches the truth best without shifting it in time.
    lags = np.arange(-10, 11)
    residual = [np.nanmean((smoothed[20 + lag : -20 + lag] - truth[20:-20]) ** 2) for lag in lags]
    assert lags[int(np.argmin(residual))] == 0


# ---------------------------------------------------------------- the CLI


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def test_folder_rows_columns_and_an_unreadable_file(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(drawn_muscle()).save(folder / "sub" / "a_2.png")
    Image.fromarray(drawn_muscle(alpha=-24.0, beta=2.0, gamma=-5.0, seed=1)).save(folder / "a_10.jpg")
    (folder / "broken.png").write_bytes(b"not an image")
    output = tmp_path / "out" / "architecture.csv"
    summary = command.run(folder, output, tmp_path / "overlay", command.Calibration(mm_per_px=0.1))
    assert summary.rows == 3 and summary.unreadable == ["broken.png"]
    header, rows = read_csv(output)
    assert header[:13] == [*command.COLUMNS, "thickness_mm", "fascicle_length_mm"]
    assert [r["image"] for r in rows] == ["a_10.jpg", "broken.png", "sub/a_2.png"]
    broken = rows[1]
    assert broken["found"] == "False" and broken["reason"].startswith("unreadable") and broken["fascicle_angle_deg"] == ""
    drawn = rows[2]
    assert drawn["found"] == "True" and float(drawn["fascicle_angle_deg"]) == pytest.approx(18.0, abs=0.5)
    assert float(drawn["thickness_mm"]) == pytest.approx(0.1 * float(drawn["thickness_px"]), rel=1e-4)
    assert (tmp_path / "overlay" / "sub" / "a_2.png").is_file() and (tmp_path / "overlay" / "a_10.png").is_file()


def test_clip_rows_follow_the_frames_and_smoothing_adds_columns(tmp_path):
    angles = np.array([16.0, 17.0, 18.0, 19.0, 20.0])
    frames = np.stack([drawn_muscle(alpha=a, height=240, width=320, superficial_row=60, deep_row=190, seed=k)
                       for k, a in enumerate(angles)])
    clip = write_video(tmp_path / "clip.mp4", frames, fps=20)
    output = tmp_path / "clip.csv"
    summary = command.run(clip, output, tmp_path / "clip_overlay.mp4", command.Calibration(), batch_size=4, smooth=True)
    assert summary.rows == 5 and summary.found == 5
    header, rows = read_csv(output)
    assert header[:11] == list(command.COLUMNS)
    assert "fascicle_angle_deg_smoothed" in header and "fascicle_length_px_smoothed" in header
    assert [int(r["frame"]) for r in rows] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], np.arange(5) / 20.0, atol=1e-6)
    np.testing.assert_allclose([float(r["fascicle_angle_deg"]) for r in rows], angles, atol=0.8)
    assert all(r["thickness_mm"] == "" for r in rows)  # no scale given
    with av.open(str(tmp_path / "clip_overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5


def test_corrupt_video_stops_with_one_line_naming_the_file(tmp_path):
    frames = np.stack([drawn_muscle(height=120, width=160, superficial_row=30, deep_row=95, seed=k) for k in range(12)])
    corrupt = truncate(write_video(tmp_path / "clip.mp4", frames), 0.5)
    with pytest.raises(ValueError, match="truncated_clip.mp4"):
        command.run(corrupt, tmp_path / "x.csv", None, command.Calibration())
    finished = subprocess.run(
        [sys.executable, "-m", "muscle_jax.architecture", f"--input={corrupt}", f"--output={tmp_path / 'y.csv'}"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120,
    )
    assert finished.returncode == 1
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "truncated_clip.mp4" in last and "Traceback" not in finished.stderr


def test_bad_settings_are_refused(tmp_path):
    Image.fromarray(drawn_muscle(height=120, width=160, superficial_row=30, deep_row=95)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="mm_per_px must be positive"):
        command.run(tmp_path / "a.png", tmp_path / "x.csv", None, command.Calibration(mm_per_px=-1.0))
    with pytest.raises(ValueError, match="needs a video"):
        command.run(tmp_path / "a.png", tmp_path / "x.csv", tmp_path / "o.mp4", command.Calibration())
    with pytest.raises(FileNotFoundError, match="no such file"):
        command.run(tmp_path / "missing", tmp_path / "x.csv", None, command.Calibration())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        command.run(tmp_path / "empty", tmp_path / "x.csv", None, command.Calibration())


# ---------------------------------------------------------------- the measured-architecture baseline


def test_ridge_on_measured_architecture_learns_from_training_folds_only():
    from muscle_jax.architecture import baseline
    from muscle_jax.folds import make_folds

    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(4), 50)
    features = rng.normal(size=(200, 4))
    targets = (features @ np.array([[1.0], [-2.0], [0.5], [0.0]])) + 3.0
    features[[10, 120]] = np.nan  # frames the stage did not measure
    found = np.isfinite(features).all(axis=1)
    folds = make_folds(groups, "participant")
    measured = baseline.MeasuredArchitecture(features, found)
    predictions = baseline.ridge_on_measured(measured, targets.astype(np.float32), folds, alpha=1e-3)
    ok = found
    np.testing.assert_allclose(predictions[ok], targets[ok], atol=0.05)
    assert np.isfinite(predictions[~found]).all()  # imputed with the fold's training means
    # Changing a held-out group's targets changes nothing of its own predictions.
    altered = targets.copy()
    altered[groups == 0] += 100.0
    again = baseline.ridge_on_measured(measured, altered.astype(np.float32), folds, alpha=1e-3)
    np.testing.assert_allclose(again[groups == 0], predictions[groups == 0], atol=1e-4)


def test_dicom_cine_gives_millimetres_from_its_pixel_spacing(tmp_path):
    import pydicom

    from test_readers import write_dicom

    frames = np.stack([drawn_muscle(alpha=a, height=240, width=320, superficial_row=60, deep_row=190, seed=k)
                       for k, a in enumerate((15.0, 16.0, 17.0))])
    path = write_dicom(tmp_path / "cine.dcm", frames, frame_time_ms=40.0, region=Crop(0, 0, 320, 240))
    dataset = pydicom.dcmread(str(path))
    region = dataset.SequenceOfUltrasoundRegions[0]
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # centimetres
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.012
    dataset.save_as(str(path), enforce_file_format=True)
    output = tmp_path / "cine.csv"
    assert command.run(path, output, None, command.Calibration()).found == 3
    _, rows = read_csv(output)
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], [0.0, 0.04, 0.08], atol=1e-6)
    for row in rows:
        assert float(row["thickness_mm"]) == pytest.approx(0.12 * float(row["thickness_px"]), rel=1e-4)
        assert float(row["fascicle_length_mm"]) == pytest.approx(0.12 * float(row["fascicle_length_px"]), rel=1e-4)
    region.PhysicalDeltaY = 0.02  # rows 0.2 mm, columns 0.12 mm: angles in pixels are not angles in the body
    dataset.save_as(str(path), enforce_file_format=True)
    with pytest.raises(ValueError, match="not square"):
        command.run(path, output, None, command.Calibration())


def test_calibration_file_gives_region_and_scale_and_bad_ones_are_refused(tmp_path):
    capture = np.full((300, 420), 45, np.uint8)
    capture[20:280, 30:390] = drawn_muscle(height=260, width=360, superficial_row=60, deep_row=200)
    Image.fromarray(capture).save(tmp_path / "capture.png")
    (tmp_path / "calibration.json").write_text('{"mm_per_px": 0.08, "crop_xywh": [30, 20, 360, 260]}')
    calibration = command.read_calibration(tmp_path / "calibration.json")
    assert calibration == command.Calibration(Crop(30, 20, 360, 260), 0.08)
    command.run(tmp_path / "capture.png", tmp_path / "out.csv", None, calibration)
    _, (row,) = read_csv(tmp_path / "out.csv")
    assert row["found"] == "True" and float(row["thickness_mm"]) == pytest.approx(0.08 * float(row["thickness_px"]), rel=1e-4)
    (tmp_path / "bad.json").write_text('{"mm_per_px": "wide"}')
    with pytest.raises(ValueError, match=r"bad\.json: expected JSON"):
        command.read_calibration(tmp_path / "bad.json")
