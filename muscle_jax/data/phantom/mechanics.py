"""Muscle-tendon mechanics: from ankle angle and activation to fascicles, force, torque and EMG.

Model (docs/phantom.md has it in words, with sources):
  * Muscle-tendon unit (MTU) length changes with ankle angle through the Achilles moment arm;
    at rest only a share of that excursion reaches the muscle belly (slack in aponeurosis
    and tendon), so the belly sees  d_belly = share * moment_arm * angle.
  * Constant-thickness belly: fascicle length L and pennation a satisfy L sin a = h, and the
    fascicles' projection on the line of pull is P(L) = sqrt(L² - h²).
  * Series-elastic tendon, linear above slack:  stretch = F_tendon / k.
  * Hill-type fascicle force F = F_max (a_t fl(L) + fp(L)), pulling on the tendon with F cos a.
  * Equilibrium of belly and tendon:  P(L) + F_tendon(L) / k = P(L_rest) + d_belly,
    solved for L by bisection, for all frames at once.
  * Activation is the excitation delayed by the electromechanical delay; EMG is the
    undelayed excitation times the participant's EMG amplitude, with multiplicative
    envelope noise and a small electrode baseline.
  * Torque = F_tendon × moment arm + passive joint torque + sensor noise.
  * Passive fascicles shorter than their slack length are crimped; active force takes the
    slack up. `slack` (0–1) drives the crimp the imaging draws.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from muscle_jax.data.phantom.participants import Participant

FORCE_LENGTH_WIDTH = 0.5  # Gaussian active force–length relation (Gordon et al. 1966 shape)
PASSIVE_FORCE_SCALE = 0.05
PASSIVE_FORCE_STIFFENING = 4.0
SLACK_RANGE = 0.2  # fascicles are fully crimped 20% below their slack length
SLACK_TAKEN_UP_BY_ACTIVE_FRACTION = 0.05  # a few % of maximal active force straightens them
TORQUE_NOISE_NM = 0.5
EMG_ENVELOPE_NOISE = 0.08  # relative noise of a smoothed rectified surface EMG
EMG_BASELINE_V = 5e-6


@dataclasses.dataclass(frozen=True)
class MuscleState:
    """Per-frame mechanical state of the muscle (all float64 arrays of shape [T])."""

    fascicle_length_mm: np.ndarray
    pennation_deg: np.ndarray
    thickness_mm: np.ndarray
    tendon_force_n: np.ndarray
    active_fraction: np.ndarray  # a * fl(L): share of maximal active force being produced
    belly_displacement_mm: np.ndarray  # shortening of the belly's projection relative to rest
    slack: np.ndarray  # 0 = taut; 1 = passive fascicle 20% or more below its slack length


def active_force_length(length_over_optimum: np.ndarray) -> np.ndarray:
    return np.exp(-(((length_over_optimum - 1.0) / FORCE_LENGTH_WIDTH) ** 2))


def passive_force_length(length_over_optimum: np.ndarray) -> np.ndarray:
    stretch = np.maximum(length_over_optimum - 1.0, 0.0)
    return PASSIVE_FORCE_SCALE * (np.exp(PASSIVE_FORCE_STIFFENING * stretch) - 1.0)


def max_fascicle_force_n(participant: Participant) -> float:
    """Fascicle force that gives the participant's maximal torque at neutral rest architecture."""
    moment_arm_m = participant.moment_arm_mm * 1e-3
    return participant.max_torque_nm / (moment_arm_m * np.cos(np.deg2rad(participant.rest_pennation_deg)))


def solve_muscle(participant: Participant, angle_deg_T: np.ndarray, activation_T: np.ndarray) -> MuscleState:
    """Fascicle length, pennation and tendon force in equilibrium at each frame."""
    angle_deg_T = np.asarray(angle_deg_T, np.float64)
    activation_T = np.asarray(activation_T, np.float64)
    if angle_deg_T.shape != activation_T.shape:
        raise ValueError(f"solve_muscle: angle shape {angle_deg_T.shape} != activation shape {activation_T.shape}")
    rest_length = participant.rest_fascicle_length_mm
    optimum = rest_length / participant.rest_length_over_optimum
    f_max = max_fascicle_force_n(participant)
    stiffness = participant.tendon_stiffness_n_per_mm
    # Contraction bulges the belly slightly; thickness follows the active force, which
    # itself depends on thickness only weakly, so one fixed-point pass is enough.
    thickness = np.full_like(angle_deg_T, participant.thickness_mm)
    rest_projection = np.sqrt(rest_length**2 - participant.thickness_mm**2)
    belly_excursion = participant.passive_belly_share * participant.moment_arm_mm * np.deg2rad(angle_deg_T)

    def tendon_force(length, h):
        ratio = length / optimum
        fibre = f_max * (activation_T * active_force_length(ratio) + passive_force_length(ratio))
        return fibre * np.sqrt(length**2 - h**2) / length

    def solve(h):
        # P(L) + F(L)/k - target is increasing in L over the bracket (see module docstring).
        low = h * 1.0001
        high = np.full_like(h, 3.0 * optimum)
        target = rest_projection + belly_excursion
        for _ in range(48):
            middle = 0.5 * (low + high)
            residual = np.sqrt(middle**2 - h**2) + tendon_force(middle, h) / stiffness - target
            high = np.where(residual > 0, middle, high)
            low = np.where(residual > 0, low, middle)
        return 0.5 * (low + high)

    length = solve(thickness)
    active_fraction = activation_T * active_force_length(length / optimum)
    thickness = participant.thickness_mm * (1.0 + participant.activation_bulge * active_fraction)
    length = solve(thickness)
    active_fraction = activation_T * active_force_length(length / optimum)
    projection = np.sqrt(length**2 - thickness**2)
    slack_length = participant.fascicle_slack_ratio * rest_length
    below_slack = np.clip((slack_length - length) / (SLACK_RANGE * slack_length), 0.0, 1.0)
    return MuscleState(
        slack=below_slack * np.exp(-active_fraction / SLACK_TAKEN_UP_BY_ACTIVE_FRACTION),
        fascicle_length_mm=length,
        pennation_deg=np.rad2deg(np.arcsin(thickness / length)),
        thickness_mm=thickness,
        tendon_force_n=tendon_force(length, thickness),
        active_fraction=active_fraction,
        belly_displacement_mm=projection - rest_projection,
    )


def passive_joint_torque_nm(participant: Participant, angle_deg_T: np.ndarray) -> np.ndarray:
    """Torque of the other passive structures: resists dorsiflexion, stiffening exponentially."""
    angle_rad = np.deg2rad(angle_deg_T)
    return participant.passive_torque_scale_nm * (np.exp(participant.passive_torque_stiffening * angle_rad) - 1.0)


def joint_torque_nm(participant: Participant, state: MuscleState, angle_deg_T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Plantarflexion torque measured by the dynamometer (N·m), with sensor noise."""
    muscle = state.tendon_force_n * participant.moment_arm_mm * 1e-3
    noise = rng.normal(0.0, TORQUE_NOISE_NM, size=np.shape(angle_deg_T))
    return muscle + passive_joint_torque_nm(participant, angle_deg_T) + noise


def emg_envelope_v(participant: Participant, excitation_T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smoothed rectified EMG (V): excitation scaled to the participant, with envelope noise."""
    excitation_T = np.asarray(excitation_T, np.float64)
    # Envelope noise is correlated over about one frame, as after a ~50 ms smoothing filter.
    relative = ndimage.gaussian_filter1d(rng.normal(size=excitation_T.shape), 1.0, mode="nearest")
    relative *= EMG_ENVELOPE_NOISE / max(np.std(relative), 1e-12)
    baseline = EMG_BASELINE_V * np.abs(rng.normal(size=excitation_T.shape))
    return np.maximum(participant.emg_max_v * excitation_T * (1.0 + relative) + baseline, 0.0)
