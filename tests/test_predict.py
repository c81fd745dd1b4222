"""Prediction end to end on a real (tiny) run: a `recordings` layout → the tfds builder →
training → the fold ensemble on a new video → one CSV row per decoded frame."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import csv

import numpy as np
import pytest

from muscle_jax import ensemble as ensemble_lib
from muscle_jax import predict
from test_readers import synthetic_frames, truncate, write_video

TARGETS = ("angle_deg", "torque_nm", "emg_v")


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def loaded_ensemble(recordings_run):
    return ensemble_lib.load(recordings_run[0])


@pytest.fixture(scope="module")
def cli_prediction(recordings_run, loaded_ensemble):
    """The command's work (CPU inference path) on a new 30-frame video: (video, rows of its
    CSV, plot, summary), with the run already loaded from that same workdir."""
    workdir, root = recordings_run
    video = write_video(root / "new.mp4", synthetic_frames(30))
    output, figure = root / "out" / "pred.csv", root / "out" / "pred.png"
    summary = predict.run(workdir, video, output, figure, ensemble=loaded_ensemble)
    return video, read_rows(output), figure, summary


def test_cli_writes_one_row_per_decoded_frame(cli_prediction):
    _, rows, figure, stdout = cli_prediction
    states = [c for t in TARGETS for c in (t, f"{t}_std")]
    architecture = ["architecture_found", "superficial_aponeurosis_angle_deg", "deep_aponeurosis_angle_deg",
                    "fascicle_angle_deg", "pennation_deg", "thickness_px", "fascicle_length_px"]
    assert list(rows[0]) == ["frame", "time_s", *states, *architecture]
    assert [int(r["frame"]) for r in rows] == list(range(30))
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], np.arange(30) / 30, atol=1e-5)
    # The synthetic frames hold no muscle: the architecture stage says so on every row.
    assert all(float(r["architecture_found"]) == 0 and r["fascicle_angle_deg"] == "nan" for r in rows)
    values = np.array([[float(r[c]) for c in states] for r in rows])
    assert np.isfinite(values).all() and (values[:, 1::2] >= 0).all()
    assert figure.stat().st_size > 0
    assert "30 frames" in stdout and "frames/s" in stdout and "recorded at 30.0 frames/s" in stdout
    assert "architecture measured on 0/30 frames" in stdout


def test_cpu_inference_matches_the_ensemble_and_bad_input_is_reported(loaded_ensemble, cli_prediction):
    video, rows, _, _ = cli_prediction
    ensemble = loaded_ensemble
    reference = predict.predict_recording(ensemble, video)
    for t, target in enumerate(TARGETS):
        np.testing.assert_allclose([float(r[target]) for r in rows], reference.mean_NxT[:, t], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose([float(r[f"{target}_std"]) for r in rows], reference.std_NxT[:, t], rtol=1e-3, atol=1e-5)
    truncated = truncate(video, 0.6)
    with pytest.raises(ValueError, match=r"truncated_new\.mp4: truncated or corrupt"):
        predict.predict_recording(ensemble, truncated)
    skipped = predict.predict_recording(ensemble, truncated, skip_bad_frames=True)
    assert skipped.skipped_frames == 30 - len(skipped.frame_N) > 0
    np.testing.assert_allclose(skipped.mean_NxT, reference.mean_NxT[skipped.frame_N], rtol=1e-5, atol=1e-5)
