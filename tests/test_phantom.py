"""Phantom API: keys, shapes, dtypes, determinism, ROI/mask consistency and speckle behaviour."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from muscle_jax.data import phantom
from muscle_jax.data.phantom import imaging, mechanics, protocol
from muscle_jax.data.phantom.simulate import participant_streams
from muscle_jax.data.roi import resample_between_curves

TINY = phantom.phantom_tiny()

SIGNALS = ("angle_deg", "torque_nm", "emg_v", "fascicle_length_mm", "pennation_deg", "thickness_mm", "time_s")


@pytest.fixture(scope="module")
def tiny_participants():
    return list(phantom.simulate_participants(TINY))


def test_trials_have_documented_keys_shapes_and_dtypes(tiny_participants):
    assert [index for index, _ in tiny_participants] == [0, 1]
    for index, trials in tiny_participants:
        assert [t["trial"] for t in trials] == [0, 1, 2]
        assert [t["kind"] for t in trials] == ["passive", "isometric", "combined"]
        for trial in trials:
            num_frames = round(
                {"passive": 1.0, "isometric": 1.0, "combined": 1.2}[trial["kind"]] * TINY.frame_rate_hz
            )
            assert trial["participant"] == index
            assert trial["image"].shape == (num_frames, 16, 24, 1) and trial["image"].dtype == np.uint8
            for key in ("frame_image", "mask"):
                assert trial[key].shape == (num_frames, 64, 64, 1) and trial[key].dtype == np.uint8
            for key in SIGNALS:
                assert trial[key].shape == (num_frames,) and trial[key].dtype == np.float32, key
            assert trial["frame"].dtype == np.int32
            np.testing.assert_array_equal(trial["frame"], np.arange(num_frames))
            np.testing.assert_allclose(trial["time_s"], np.arange(num_frames) / 25.0, atol=1e-6)
            assert trial["superficial_coeffs"].shape == (num_frames, 3)
            assert trial["deep_coeffs"].shape == (num_frames, 3)
            assert set(np.unique(trial["mask"])) <= {0, 1, 2, 3}


def test_same_seed_gives_identical_arrays_whatever_the_worker_count(tiny_participants):
    parallel = list(phantom.simulate_participants(dataclasses.replace(TINY, workers=2)))
    for (index_a, trials_a), (index_b, trials_b) in zip(tiny_participants, parallel, strict=True):
        assert index_a == index_b
        for trial_a, trial_b in zip(trials_a, trials_b, strict=True):
            assert trial_a.keys() == trial_b.keys()
            for key in trial_a:
                np.testing.assert_array_equal(np.asarray(trial_a[key]), np.asarray(trial_b[key]), err_msg=key)


def test_another_seed_gives_other_participants(tiny_participants):
    other = phantom.simulate_participant(dataclasses.replace(TINY, seed=1), 0)
    assert not np.array_equal(other[0]["frame_image"], tiny_participants[0][1][0]["frame_image"])
    assert phantom.participant_for(TINY, 0) != phantom.participant_for(dataclasses.replace(TINY, seed=1), 0)


def test_participant_parameters_lie_in_their_documented_ranges():
    config = dataclasses.replace(TINY, num_participants=40)
    for index in range(config.num_participants):
        participant = phantom.participant_for(config, index)
        for name, bounds in phantom.PARAMETER_RANGES.items():
            assert bounds.low <= getattr(participant, name) <= bounds.high, name
            assert bounds.source, name
        assert 13.0 <= participant.thickness_mm <= 23.0


def test_roi_is_the_frame_resampled_between_the_true_aponeurosis_curves(tiny_participants):
    trial = tiny_participants[0][1][2]
    for k in (0, 7, len(trial["frame"]) - 1):
        expected = resample_between_curves(
            trial["frame_image"][k, ..., 0], trial["superficial_coeffs"][k], trial["deep_coeffs"][k],
            TINY.roi_column_range, TINY.roi_hw,
        )
        np.testing.assert_array_equal(trial["image"][k, ..., 0], np.clip(np.rint(expected), 0, 255).astype(np.uint8))


def test_mask_and_curves_agree(tiny_participants):
    trial = tiny_participants[1][1][0]
    columns = np.arange(TINY.frame_hw[1])
    for k in (0, 12):
        mask = trial["mask"][k, ..., 0]
        top = np.polyval(trial["superficial_coeffs"][k].astype(np.float64), columns)
        bottom = np.polyval(trial["deep_coeffs"][k].astype(np.float64), columns)
        rows = np.arange(TINY.frame_hw[0])[:, None]
        between = (rows > top[None, :] + 0.5) & (rows < bottom[None, :] - 0.5)
        assert np.all(mask[between] == imaging.MUSCLE)
        outside = (rows < top[None, :] - 4.0) | (rows > bottom[None, :] + 4.0)
        assert not np.any(mask[outside] == imaging.MUSCLE)
        # Each aponeurosis sits on its side of the muscle.
        superficial_rows, _ = np.nonzero(mask == imaging.SUPERFICIAL)
        deep_rows, _ = np.nonzero(mask == imaging.DEEP)
        assert superficial_rows.max() < deep_rows.min()
        # Thickness label (mm) matches the curves' distance at the frame centre within the tilt factor.
        centre = (TINY.frame_hw[1] - 1) / 2
        vertical_mm = (np.polyval(trial["deep_coeffs"][k], centre) - np.polyval(trial["superficial_coeffs"][k], centre)) * TINY.mm_per_px
        assert trial["thickness_mm"][k] <= vertical_mm <= trial["thickness_mm"][k] / np.cos(np.deg2rad(12.0))


def _isometric_render(config, participant, seed_index, num_frames=24, **overrides):
    participant = dataclasses.replace(participant, **overrides)
    streams = participant_streams(config, seed_index)
    canvas = imaging.build_canvas(participant, config, streams["tissue"])
    angle = np.zeros(num_frames)
    activation = np.linspace(0.0, 0.6, num_frames)
    state = mechanics.solve_muscle(participant, angle, activation)
    geometry = imaging.frame_geometry(participant, state, angle, streams["trials"][0]["imaging"])
    return imaging.render_frames(participant, canvas, geometry, config, streams["trials"][0]["imaging"], keep_envelope=True)


def test_speckle_envelope_is_rayleigh_in_homogeneous_muscle():
    config = dataclasses.replace(TINY, frame_hw=(96, 96), mm_per_px=0.4)
    participant = phantom.participant_for(config, 0)
    _, masks, envelopes = _isometric_render(config, participant, 0, num_frames=8, striation_contrast=0.0)
    inside = masks == imaging.MUSCLE
    inside &= np.roll(inside, 3, axis=1) & np.roll(inside, -3, axis=1)  # away from the aponeuroses
    amplitude = envelopes[inside].astype(np.float64)
    # Rayleigh amplitude: mean / std = sqrt(pi / (4 - pi)) ≈ 1.91, mean² / mean-square = pi / 4.
    assert amplitude.mean() / amplitude.std() == pytest.approx(1.91, abs=0.12)
    assert amplitude.mean() ** 2 / np.mean(amplitude**2) == pytest.approx(np.pi / 4, abs=0.03)


def test_speckle_moves_with_the_tissue_rather_than_being_redrawn():
    config = dataclasses.replace(TINY, frame_hw=(96, 96), mm_per_px=0.4)
    participant = phantom.participant_for(config, 0)
    frames, masks, _ = _isometric_render(config, participant, 0)
    other_tissue, _, _ = _isometric_render(config, participant, 1)
    muscle = (masks[0] == imaging.MUSCLE) & (masks[1] == imaging.MUSCLE)

    def correlation(a, b):
        return np.corrcoef(a[muscle].astype(float), b[muscle].astype(float))[0, 1]

    consecutive = correlation(frames[0], frames[1])
    redrawn = correlation(frames[0], other_tissue[1])
    assert consecutive > 0.6
    assert abs(redrawn) < 0.3
    # As the muscle contracts the pattern drifts: frames far apart decorrelate more.
    assert correlation(frames[0], frames[-1]) < consecutive


def test_config_rejects_bad_values_with_the_field_named():
    with pytest.raises(ValueError, match="num_participants"):
        phantom.PhantomConfig(num_participants=0)
    with pytest.raises(ValueError, match="roi_column_fraction"):
        phantom.PhantomConfig(roi_column_fraction=(0.8, 0.2))
    with pytest.raises(ValueError, match="participant index"):
        phantom.simulate_participant(TINY, 5)


def test_presets_match_their_documented_scale():
    small, paper = phantom.phantom_small(), phantom.phantom_paper()
    assert 6 <= small.num_participants <= 8 and small.frame_hw == (128, 128) and small.roi_hw == (64, 64)
    seconds = sum(duration for _, duration, _ in small.trial_durations_s())
    assert 30 <= seconds <= 40 and small.frame_rate_hz == 25.0
    assert paper.num_participants == 19 and paper.frame_hw[0] > small.frame_hw[0]
    assert len(protocol.plan_trials(small, np.random.default_rng(0))) == len(small.trial_durations_s())


def test_docs_give_a_source_for_every_participant_parameter():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "phantom.md").read_text()
    missing = [name for name in phantom.PARAMETER_RANGES if f"`{name}`" not in doc]
    assert not missing, f"docs/phantom.md: no row for {missing}"
