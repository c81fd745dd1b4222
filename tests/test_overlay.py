"""The overlay renderer draws what it says where it says, and `predict --overlay` writes a video
that decodes with one frame per predicted frame, with the measured signals of a layout's trial."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import av
import numpy as np
import pytest

from muscle_jax import ensemble as ensemble_lib
from muscle_jax import predict
from muscle_jax.data import recordings
from muscle_jax.data.measured import measured_signals
from muscle_jax.data.readers.frames import Crop
from muscle_jax.overlay import _BAND, _LINE_COLOURS, _MEAN, _MEASURED, OverlayRenderer, traces_for
from muscle_jax.streaming.estimators import ensemble_channels
from muscle_jax.streaming.prepare import rectangle_xy
from test_recordings import ROI_HW


def test_the_renderer_draws_the_roi_the_traces_their_band_and_the_measured_signal():
    renderer = OverlayRenderer((240, 320), traces_for(ensemble_channels(("angle_deg",)), {"angle_deg": (-10.0, 10.0)}),
                               height=240, window_s=1.0)
    gray = np.full((240, 320), 60, np.uint8)
    crop = Crop(40, 30, 200, 150)
    for k in range(30):
        rgb = renderer.render(gray, {"roi": rectangle_xy(crop)}, k / 30, np.array([5.0 * np.sin(k / 5), 2.0]),
                              {"angle_deg": -5.0}, f"frame {k}")
    assert rgb.shape == (240, renderer.width, 3) and renderer.scale == 1.0
    # The ROI outline runs along the crop's edges; the picture inside is the frame's gray.
    np.testing.assert_array_equal(rgb[100, crop.x], _LINE_COLOURS["roi"])
    np.testing.assert_array_equal(rgb[crop.y + crop.h - 1, 120], _LINE_COLOURS["roi"])
    np.testing.assert_array_equal(rgb[100, 120], [60, 60, 60])
    panel = rgb[:, renderer.frame_width:]
    colours = {tuple(c) for c in panel.reshape(-1, 3)}
    assert {_MEAN, _BAND, _MEASURED} <= colours
    # The measured signal (−5 of −10…10) is drawn three quarters of the way down the axes.
    x0, y0, x1, y1 = renderer._boxes(0)
    inside_axes = rgb[y0 + 1 : y1, x0 + 1 : x1]
    rows_measured = y0 + 1 + np.flatnonzero((inside_axes == _MEASURED).all(axis=-1).any(axis=-1))
    assert abs(np.median(rows_measured) - (y0 + 0.75 * (y1 - y0))) <= 2


@pytest.fixture(scope="module")
def ensemble(recordings_run):
    return ensemble_lib.load(recordings_run[0])


def test_predict_overlay_has_one_frame_per_predicted_frame_and_the_trials_measured_signals(ensemble, recordings_run, tmp_path):
    layout = recordings_run[1] / "layout"
    trial = next(t for t in recordings.list_trials("recordings", layout) if t.name == "P01_ramp")
    prediction = predict.predict_recording(ensemble, trial.frames_path)
    frames = predict.write_overlay(tmp_path / "overlay.mp4", ensemble, trial.frames_path, prediction)
    with av.open(str(tmp_path / "overlay.mp4")) as video:
        decoded = [f for f in video.decode(video=0)]
    assert frames == len(decoded) == len(prediction.frame_N) == 12
    np.testing.assert_allclose([f.time for f in decoded], prediction.time_s_N, atol=1e-3)
    measured = measured_signals(trial.frames_path, "recordings", layout, ("angle_deg", "torque_nm"), 12)
    expected = recordings.load_trial(trial, ROI_HW, "calibration", ("angle_deg", "torque_nm"))
    at_frames = measured.at(prediction.frame_N, prediction.time_s_N)
    for target in ("angle_deg", "torque_nm"):
        np.testing.assert_allclose(at_frames[target], expected[target], rtol=1e-5)
    assert measured_signals(tmp_path / "overlay.mp4", "recordings", layout, ("angle_deg",), 12) is None
