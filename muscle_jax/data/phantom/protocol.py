"""Recording protocol: what the ankle angle and the neural drive do during each trial.

Three kinds of trial, as in Cunningham et al. (2017, 2019):
  passive    the dynamometer rotates the relaxed ankle slowly through its range;
  isometric  the ankle is held at one angle while the participant contracts to varying levels;
  combined   angle and contraction vary at once and independently (the 2019 design), so that
             neither can be read off the other.
Excitation (neural drive, 0–1 of maximal) is a smooth monotone-cubic curve through random
knots, so it can be evaluated at any time, e.g. shifted by the electromechanical delay.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import interpolate

from muscle_jax.data.phantom.config import PhantomConfig

ANGLE_LIMIT_DEG = 20.0  # the study's range of ankle rotation around neutral
MAX_EXCITATION = 0.85  # participants were not asked for maximal efforts during the trials
REST_EXCITATION = 0.01
LEAD_IN_S = 1.0  # knots start before t = 0 so delayed excitation is defined at the start


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """Angle at each frame and the excitation curve of one trial."""

    kind: str
    time_s_T: np.ndarray
    angle_deg_T: np.ndarray
    excitation_knot_times_s: np.ndarray
    excitation_knot_values: np.ndarray

    def excitation(self, time_s: np.ndarray) -> np.ndarray:
        """Neural excitation (0–1) at arbitrary times, by monotone cubic interpolation."""
        curve = interpolate.PchipInterpolator(self.excitation_knot_times_s, self.excitation_knot_values)
        return np.clip(curve(time_s), 0.0, 1.0)


def _smooth_knots(rng: np.random.Generator, duration_s: float, spacing_s: tuple[float, float]) -> np.ndarray:
    """Knot times from -LEAD_IN_S to past the end, with random spacing in `spacing_s`."""
    times = [-LEAD_IN_S]
    while times[-1] < duration_s + 1.0:
        times.append(times[-1] + rng.uniform(*spacing_s))
    return np.asarray(times)


def _contraction_knots(rng: np.random.Generator, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Random contraction levels: about a third of the knots at rest, the rest up to MAX_EXCITATION."""
    times = _smooth_knots(rng, duration_s, (0.6, 1.4))
    at_rest = rng.uniform(size=times.size) < 0.3
    levels = np.where(at_rest, REST_EXCITATION, rng.uniform(0.05, MAX_EXCITATION, size=times.size))
    return times, levels


def _passive_plan(rng, time_s, duration_s):
    amplitude = rng.uniform(15.0, ANGLE_LIMIT_DEG)
    frequency = rng.uniform(0.15, 0.3)
    phase = rng.uniform(0, 2 * np.pi)
    angle = amplitude * np.sin(2 * np.pi * frequency * time_s + phase)
    knot_t = _smooth_knots(rng, duration_s, (1.0, 2.0))
    knot_v = REST_EXCITATION * rng.uniform(0.5, 1.5, size=knot_t.size)
    return angle, knot_t, knot_v


def _isometric_plan(rng, time_s, duration_s, fixed_angle_deg):
    # The dynamometer is stiff but not rigid: a fraction of a degree of smooth wobble.
    wobble_t = _smooth_knots(rng, duration_s, (0.5, 1.0))
    wobble = interpolate.PchipInterpolator(wobble_t, rng.normal(0, 0.3, size=wobble_t.size))(time_s)
    knot_t, knot_v = _contraction_knots(rng, duration_s)
    return fixed_angle_deg + wobble, knot_t, knot_v


def _combined_plan(rng, time_s, duration_s):
    angle_t = _smooth_knots(rng, duration_s, (1.0, 2.0))
    angle_curve = interpolate.PchipInterpolator(angle_t, rng.uniform(-ANGLE_LIMIT_DEG, ANGLE_LIMIT_DEG, size=angle_t.size))
    knot_t, knot_v = _contraction_knots(rng, duration_s)
    return angle_curve(time_s), knot_t, knot_v


def plan_trials(config: PhantomConfig, rng: np.random.Generator) -> list[TrialPlan]:
    """The trials of one participant in recording order (passive, isometric…, combined…)."""
    plans = []
    for kind, duration_s, fixed_angle in config.trial_durations_s():
        num_frames = int(round(duration_s * config.frame_rate_hz))
        time_s = np.arange(num_frames) / config.frame_rate_hz
        if kind == "passive":
            angle, knot_t, knot_v = _passive_plan(rng, time_s, duration_s)
        elif kind == "isometric":
            angle, knot_t, knot_v = _isometric_plan(rng, time_s, duration_s, fixed_angle)
        else:
            angle, knot_t, knot_v = _combined_plan(rng, time_s, duration_s)
        plans.append(TrialPlan(kind, time_s, angle, knot_t, knot_v))
    return plans
