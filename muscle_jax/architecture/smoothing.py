"""Optional temporal smoothing of per-frame architecture: a constant-velocity Kalman filter.

Every frame is measured on its own, so the measurements cannot drift; they are noisy
instead. As UltraTimTrack does for fascicle angle and length, a Kalman filter weighs each
new measurement against the state predicted from the previous frames. Here the state of
each quantity is its value and rate of change (constant velocity, driven by white
acceleration noise), the measurement is the frame's own value, and frames where nothing
was found are predicted over, never measured. `kalman_filter` is causal (for live use);
`kalman_smoother` adds the Rauch–Tung–Striebel backward pass, which removes the filter's
lag on a finished recording. Smoothed values are NaN where the frame itself was not found.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """Measurement noise (sd, the quantity's units) and the white acceleration that drives
    true changes (sd of the acceleration spectral density, units/s² · √s)."""

    measurement_sd: float
    acceleration_sd: float

    def __post_init__(self):
        if not (self.measurement_sd > 0 and self.acceleration_sd > 0):
            raise ValueError(f"noise model needs positive sds, got {self}")


def _transition(dt: float, acceleration_sd: float) -> tuple[np.ndarray, np.ndarray]:
    transition = np.array([[1.0, dt], [0.0, 1.0]])
    q = acceleration_sd**2
    process = q * np.array([[dt**3 / 3.0, dt**2 / 2.0], [dt**2 / 2.0, dt]])
    return transition, process


def _intervals(time_s_N: np.ndarray, default_dt: float) -> np.ndarray:
    """Seconds between consecutive frames (the first is 0); `default_dt` where times are unknown."""
    dt = np.diff(np.asarray(time_s_N, np.float64), prepend=np.nan)
    dt[~np.isfinite(dt)] = default_dt
    dt[0] = 0.0
    if np.any(dt < 0):
        raise ValueError("frame times must not decrease")
    return dt


def _forward(time_s_N: np.ndarray, values_N: np.ndarray, noise: NoiseModel, default_dt: float):
    """Filtered and predicted means and covariances of every frame."""
    count = len(values_N)
    dt_N = _intervals(time_s_N, default_dt)
    means, covs = np.zeros((count, 2)), np.zeros((count, 2, 2))
    predicted_means, predicted_covs = np.zeros((count, 2)), np.zeros((count, 2, 2))
    mean, cov, started = np.zeros(2), np.eye(2), False
    r = noise.measurement_sd**2
    for k in range(count):
        transition, process = _transition(dt_N[k], noise.acceleration_sd)
        if started:
            mean, cov = transition @ mean, transition @ cov @ transition.T + process
        predicted_means[k], predicted_covs[k] = mean, cov
        value = values_N[k]
        if np.isfinite(value):
            if not started:  # the first measurement sets the state; its rate is unknown
                mean, cov, started = np.array([value, 0.0]), np.diag([r, 1e6]), True
            else:
                gain = cov[:, 0] / (cov[0, 0] + r)
                mean = mean + gain * (value - mean[0])
                cov = cov - np.outer(gain, cov[0, :])
        means[k], covs[k] = mean, cov
    return means, covs, predicted_means, predicted_covs, dt_N


def kalman_filter(time_s_N: np.ndarray, values_N: np.ndarray, noise: NoiseModel, default_dt: float = 1.0) -> np.ndarray:
    """Causal estimates: each frame's value from that frame and the ones before it."""
    values_N = np.asarray(values_N, np.float64)
    means = _forward(time_s_N, values_N, noise, default_dt)[0]
    return np.where(np.isfinite(values_N), means[:, 0], np.nan)


def kalman_smoother(time_s_N: np.ndarray, values_N: np.ndarray, noise: NoiseModel, default_dt: float = 1.0) -> np.ndarray:
    """Estimates from the whole recording (forward filter, then Rauch–Tung–Striebel backwards): no lag."""
    values_N = np.asarray(values_N, np.float64)
    means, covs, predicted_means, predicted_covs, dt_N = _forward(time_s_N, values_N, noise, default_dt)
    smoothed = means.copy()
    for k in range(len(values_N) - 2, -1, -1):
        transition, _ = _transition(dt_N[k + 1], noise.acceleration_sd)
        if not np.isfinite(predicted_covs[k + 1]).all() or predicted_covs[k + 1][0, 0] == 0:
            continue
        gain = covs[k] @ transition.T @ np.linalg.inv(predicted_covs[k + 1])
        smoothed[k] = means[k] + gain @ (smoothed[k + 1] - predicted_means[k + 1])
    return np.where(np.isfinite(values_N), smoothed[:, 0], np.nan)
