"""Intervals over folds: the bootstrap interval of a mean and paired differences."""

import numpy as np

from muscle_jax import intervals


def test_interval_brackets_the_mean_and_is_reproducible():
    values_F = np.array([4.1, 5.3, 3.9, 6.8, 4.4, 5.0, 7.2, 3.5])
    low, high = intervals.bootstrap_mean_ci(values_F)
    assert low < values_F.mean() < high
    assert values_F.min() < low and high < values_F.max()  # an interval of the mean, not of the folds
    assert intervals.bootstrap_mean_ci(values_F) == (low, high)
    assert intervals.bootstrap_mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_undefined_folds_are_left_out_and_too_few_give_none():
    assert intervals.bootstrap_mean_ci([1.0, np.nan, 3.0]) == intervals.bootstrap_mean_ci([1.0, 3.0])
    assert intervals.bootstrap_mean_ci([1.0, np.nan]) is None


def test_coverage_of_a_known_mean_is_close_to_the_nominal_level():
    rng = np.random.default_rng(1)
    hits = 0
    for trial in range(200):
        low, high = intervals.bootstrap_mean_ci(rng.normal(10.0, 2.0, size=30), num_resamples=2000, seed=trial)
        hits += low <= 10.0 <= high
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_paired_difference_counts_folds_and_rejects_mismatched_folds():
    baseline_F = np.array([5.0, 6.0, 7.0, 8.0])
    better_F = baseline_F - np.array([0.5, 1.0, 0.2, -0.1])
    difference = intervals.paired_difference(better_F, baseline_F)
    assert difference["folds_lower"] == 3 and difference["folds"] == 4
    np.testing.assert_allclose(difference["mean"], -0.4)
    assert difference["ci95"][0] < -0.4 < difference["ci95"][1]
    assert intervals.paired_difference(better_F[:3], baseline_F) is None
