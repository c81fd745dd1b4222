"""Confidence intervals over cross-validation folds.

Each fold's held-out metric is one observation of how the method does on an unseen
participant; the interval on their mean comes from resampling folds with replacement
(percentile bootstrap, fixed seed, so a report regenerates to the same digits). With 6–16
folds these intervals are rough; they are there so that no headline number stands alone.
"""

from __future__ import annotations

import numpy as np

NUM_RESAMPLES = 10_000
CONFIDENCE = 0.95


def bootstrap_mean_ci(values_F, confidence: float = CONFIDENCE, num_resamples: int = NUM_RESAMPLES,
                      seed: int = 0) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean of per-fold values; None with fewer than 2
    finite values (undefined folds, such as Pearson r of a constant predictor, are left out)."""
    values_F = np.asarray(values_F, np.float64)
    values_F = values_F[np.isfinite(values_F)]
    if values_F.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means_R = values_F[rng.integers(0, values_F.size, size=(num_resamples, values_F.size))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means_R, [tail, 100.0 - tail])
    return float(low), float(high)


def paired_difference(values_F, baseline_F, **bootstrap) -> dict | None:
    """Mean per-fold difference `values − baseline` (same folds, same held-out groups) with its
    bootstrap interval and how many folds the difference is negative in; None when the folds
    do not match up."""
    values_F, baseline_F = np.asarray(values_F, np.float64), np.asarray(baseline_F, np.float64)
    if values_F.shape != baseline_F.shape:
        return None
    difference_F = values_F - baseline_F
    finite = np.isfinite(difference_F)
    if not finite.any():
        return None
    return {
        "mean": float(difference_F[finite].mean()),
        "ci95": bootstrap_mean_ci(difference_F, **bootstrap),
        "folds_lower": int((difference_F[finite] < 0).sum()),
        "folds": int(finite.sum()),
    }
