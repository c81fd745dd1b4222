"""Mask → aponeurosis curves → ROI, on synthetic masks whose lines are known."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from muscle_jax.segmentation.curves import default_roi_config, fit_aponeuroses  # noqa: E402
from muscle_jax.segmentation.inference import roi_from_fit  # noqa: E402

HEIGHT, WIDTH = 300, 400


def band_mask(lines, half_thickness=3, columns=(0, WIDTH)):
    """A mask with one band of ±half_thickness rows around each (slope, intercept) line."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    mask = np.zeros((HEIGHT, WIDTH), bool)
    for slope, intercept in lines:
        mask |= (np.abs(rows - (slope * cols + intercept)) <= half_thickness) & (cols >= columns[0]) & (cols < columns[1])
    return mask


def test_recovers_two_known_lines_and_thickness():
    superficial, deep = (0.05, 60.0), (-0.1, 230.0)
    fit = fit_aponeuroses(band_mask([superficial, deep]), default_roi_config())
    assert fit.found and fit.reason == ""
    columns = np.linspace(0, WIDTH - 1, 50)
    np.testing.assert_allclose(np.polyval(fit.superficial_coeffs, columns), np.polyval(superficial, columns), atol=0.5)
    np.testing.assert_allclose(np.polyval(fit.deep_coeffs, columns), np.polyval(deep, columns), atol=0.5)
    np.testing.assert_allclose(fit.column_range, [0, WIDTH - 1])
    true_thickness = np.mean(np.polyval(deep, columns) - np.polyval(superficial, columns))
    assert fit.thickness_px == pytest.approx(true_thickness, abs=0.5)


def test_muscle_of_interest_lies_between_the_shallowest_two_of_three_bands():
    fit = fit_aponeuroses(band_mask([(0.0, 40.0), (0.0, 150.0), (0.0, 260.0)]), default_roi_config())
    assert fit.found
    np.testing.assert_allclose(np.polyval(fit.deep_coeffs, [0, 399]), 150.0, atol=0.5)


def test_fragmented_aponeurosis_is_joined_into_one_curve():
    mask = band_mask([(0.0, 80.0)], columns=(0, 180)) | band_mask([(0.0, 80.0)], columns=(220, WIDTH))
    mask |= band_mask([(0.0, 200.0)])
    fit = fit_aponeuroses(mask, default_roi_config())
    assert fit.found
    np.testing.assert_allclose(np.polyval(fit.superficial_coeffs, [0, 200, 399]), 80.0, atol=0.5)
    assert fit.thickness_px == pytest.approx(120.0, abs=0.5)


def test_roi_resamples_the_band_between_the_curves():
    frame = np.zeros((HEIGHT, WIDTH), np.uint8)
    frame[101:200] = 200  # bright muscle strictly between aponeuroses at rows 100 and 200
    fit = fit_aponeuroses(band_mask([(0.0, 100.0), (0.0, 200.0)]), default_roi_config())
    roi = roi_from_fit(frame, fit, (11, 16))
    assert roi.shape == (11, 16) and roi.dtype == np.uint8
    assert np.all(roi[1:-1] == 200) and np.all(roi[0] == 0)


@pytest.mark.parametrize(
    "mask, reason_part",
    [
        (np.zeros((HEIGHT, WIDTH), bool), "too little"),
        (band_mask([(0.0, 100.0)]), "only one aponeurosis"),
        (band_mask([(0.5, 0.0), (-0.5, 250.0)]) & ~band_mask([(0.0, 125.0)], half_thickness=40), "cross"),
        (band_mask([(0.0, 100.0), (0.0, 106.0)], half_thickness=1), "thickness"),
        (band_mask([(0.0, 100.0)], columns=(0, 150)) | band_mask([(0.0, 200.0)], columns=(250, WIDTH)), "share only"),
        (np.ones((HEIGHT, WIDTH), bool), "covers"),
        (np.random.default_rng(0).random((HEIGHT, WIDTH)) < 0.05, "aponeurosis"),
    ],
    ids=["blank", "one band", "crossing", "too thin", "no overlap", "everything", "speckle"],
)
def test_implausible_masks_are_not_found_with_a_reason(mask, reason_part):
    fit = fit_aponeuroses(mask, default_roi_config())
    assert not fit.found
    assert reason_part in fit.reason
    assert np.all(np.isnan(fit.superficial_coeffs)) and np.isnan(fit.thickness_px)


def test_non_2d_mask_is_an_error():
    with pytest.raises(ValueError, match="2-D mask"):
        fit_aponeuroses(np.zeros((2, 3, 4), bool), default_roi_config())


def test_two_bands_lost_in_clutter_are_not_found():
    mask = band_mask([(0.0, 100.0), (0.0, 200.0)])
    for column in range(20, 380, 40):  # blobs holding more pixels than the bands
        mask[230:290, column : column + 10] = True
        mask[10:70, column : column + 10] = True
    fit = fit_aponeuroses(mask, default_roi_config())
    assert not fit.found and "cluttered" in fit.reason
