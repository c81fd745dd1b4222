"""Physics of the phantom, checked on the signals and labels it actually produces.

Each test states a relation the muscle must obey and would fail if the relation were
broken in the mechanics (e.g. pennation independent of activation, no delay, a rigid tendon).
"""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import dataclasses

import numpy as np
import pytest
from scipy import interpolate, stats

from muscle_jax.data import phantom
from muscle_jax.data.phantom import mechanics

# Signals only matter here; small frames keep the rendering cheap.
CONFIG = dataclasses.replace(
    phantom.phantom_tiny(),
    num_participants=3, frame_hw=(48, 48), roi_hw=(8, 8), mm_per_px=1.0, isometric_angles_deg=(-10.0, 10.0),
    passive_duration_s=8.0, isometric_duration_s=8.0, combined_duration_s=8.0,
)


@pytest.fixture(scope="module")
def recordings():
    return dict(phantom.simulate_participants(CONFIG))


def _trials(recordings, kind):
    return [(index, t) for index, trials in recordings.items() for t in trials if t["kind"] == kind]


def test_fascicles_lengthen_and_pennation_falls_with_dorsiflexion_at_rest(recordings):
    for _, trial in _trials(recordings, "passive"):
        assert stats.spearmanr(trial["angle_deg"], trial["fascicle_length_mm"]).statistic > 0.95
        assert stats.spearmanr(trial["angle_deg"], trial["pennation_deg"]).statistic < -0.95
        slope = np.polyfit(trial["angle_deg"], trial["fascicle_length_mm"], 1)[0]
        assert 0.2 < slope < 1.0  # mm per degree: Narici et al. (1996) report about 0.5


def test_pennation_rises_and_fascicles_shorten_with_activation_at_a_fixed_angle(recordings):
    for _, trial in _trials(recordings, "isometric"):
        active_torque = trial["torque_nm"]  # the angle is fixed, so torque tracks activation
        assert stats.spearmanr(active_torque, trial["pennation_deg"]).statistic > 0.9
        assert stats.spearmanr(active_torque, trial["fascicle_length_mm"]).statistic < -0.9
        assert np.ptp(trial["pennation_deg"]) > 2.0


def test_torque_rises_with_activation(recordings):
    for index, trial in _trials(recordings, "isometric"):
        participant = phantom.participant_for(CONFIG, index)
        # EMG shifted by the electromechanical delay is the activation that makes the force.
        delay_frames = participant.electromechanical_delay_s * CONFIG.frame_rate_hz
        time = np.arange(trial["emg_v"].size)
        delayed_emg = np.interp(time - delay_frames, time, trial["emg_v"])
        assert stats.spearmanr(delayed_emg, trial["torque_nm"]).statistic > 0.9
        slope = np.polyfit(delayed_emg, trial["torque_nm"], 1)[0]
        assert slope > 0


def _lag_s(leading, lagging, frame_rate_hz, max_lag_s=0.2, step_s=0.002):
    """Delay of `lagging` behind `leading` maximising their correlation, at sub-frame resolution."""
    time = np.arange(leading.size) / frame_rate_hz
    fine = np.arange(0.5, time[-1] - 0.5, step_s)
    lead_curve = interpolate.CubicSpline(time, leading)
    lag_curve = interpolate.CubicSpline(time, lagging)
    lags = np.arange(-max_lag_s, max_lag_s + step_s / 2, step_s)
    scores = [np.corrcoef(lead_curve(fine), lag_curve(fine + lag))[0, 1] for lag in lags]
    return lags[int(np.argmax(scores))]


@pytest.mark.parametrize("delay_s", [0.03, 0.1])
def test_emg_leads_torque_by_the_electromechanical_delay(delay_s):
    # One isometric trial with a known delay, everything else as drawn for participant 0.
    config = dataclasses.replace(
        CONFIG, num_participants=1, passive_duration_s=0.0, isometric_angles_deg=(0.0,),
        isometric_duration_s=20.0, num_combined_trials=0,
    )
    participant = dataclasses.replace(phantom.participant_for(config, 0), electromechanical_delay_s=delay_s)
    (trial,) = phantom.simulate_participant(config, 0, participant=participant)
    lag = _lag_s(trial["emg_v"].astype(float), trial["torque_nm"].astype(float), config.frame_rate_hz)
    assert lag == pytest.approx(delay_s, abs=0.015)


def test_thickness_stays_nearly_constant(recordings):
    for _, trials in recordings.items():
        thickness = np.concatenate([t["thickness_mm"] for t in trials])
        assert np.ptp(thickness) / thickness.mean() < 0.06
        # ... while pennation and fascicle length change a lot.
        pennation = np.concatenate([t["pennation_deg"] for t in trials])
        assert np.ptp(pennation) > 5.0


def test_constant_thickness_geometry_holds_frame_by_frame(recordings):
    for _, trials in recordings.items():
        for trial in trials:
            implied = trial["fascicle_length_mm"] * np.sin(np.deg2rad(trial["pennation_deg"]))
            np.testing.assert_allclose(implied, trial["thickness_mm"], rtol=1e-4)


def test_signals_have_the_units_and_ranges_of_the_study(recordings):
    for _, trials in recordings.items():
        for trial in trials:
            assert np.all(np.abs(trial["angle_deg"]) <= 21.0)
            assert np.all((trial["torque_nm"] > -10.0) & (trial["torque_nm"] < 170.0))
            assert np.all((trial["emg_v"] >= 0.0) & (trial["emg_v"] < 1.5e-3))  # volts, not millivolts
            assert np.all((trial["fascicle_length_mm"] > 25.0) & (trial["fascicle_length_mm"] < 90.0))


def test_torque_is_muscle_force_times_moment_arm_plus_passive_torque():
    participant = phantom.participant_for(CONFIG, 1)
    angle = np.linspace(-20, 20, 41)
    activation = np.full_like(angle, 0.4)
    state = mechanics.solve_muscle(participant, angle, activation)
    torque = mechanics.joint_torque_nm(participant, state, angle, np.random.default_rng(0))
    expected = state.tendon_force_n * participant.moment_arm_mm * 1e-3 + mechanics.passive_joint_torque_nm(participant, angle)
    assert np.abs(torque - expected).max() < 5 * mechanics.TORQUE_NOISE_NM
    # A stiffer tendon lets the fascicles shorten less under the same activation.
    stiff = dataclasses.replace(participant, tendon_stiffness_n_per_mm=10 * participant.tendon_stiffness_n_per_mm)
    rest = mechanics.solve_muscle(participant, angle, np.zeros_like(angle))
    shortening = rest.fascicle_length_mm - state.fascicle_length_mm
    stiff_shortening = rest.fascicle_length_mm - mechanics.solve_muscle(stiff, angle, activation).fascicle_length_mm
    assert np.all(stiff_shortening < 0.5 * shortening)
