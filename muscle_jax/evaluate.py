"""Held-out evaluation across folds: predictions, metric sums, metrics, baselines.

Metrics are carried as sums (squared error, count, moments, extremes) so they add up across
batches before one division; they are turned into RMSE, nRMSE, R² and Pearson r at the end.
The same sums serve the CNN and the baselines, so every number is computed one way. The
moments are of values shifted by the fold's training mean of each target (the shifted-data
algorithm): E[y²] − E[y]² of unshifted float32 values loses the variance to cancellation
when a target's mean is large against its spread, shifted values keep it.
"""

from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from muscle_jax import runtime
from muscle_jax.data.pipeline import LabelStats
from muscle_jax.folds import Folds

SUM_NAMES = ("sse", "count", "sum_y", "sum_y2", "sum_p", "sum_p2", "sum_yp")


def metric_sums(predictions_BxT: jax.Array, targets_BxT: jax.Array, valid_B: jax.Array, shift_T: jax.Array) -> dict[str, jax.Array]:
    """Per-target sums over the valid rows of a batch, of values shifted by `shift_T` (the
    same for every batch of a fold), plus min/max of the measured values."""
    w = valid_B.astype(jnp.float32)[:, None]
    y, p = targets_BxT - shift_T[None, :], predictions_BxT - shift_T[None, :]
    big = jnp.float32(np.finfo(np.float32).max)
    return {
        "sse": jnp.sum(w * (p - y) ** 2, axis=0),
        "count": jnp.sum(w, axis=0) * jnp.ones(y.shape[1]),
        "sum_y": jnp.sum(w * y, axis=0),
        "sum_y2": jnp.sum(w * y**2, axis=0),
        "sum_p": jnp.sum(w * p, axis=0),
        "sum_p2": jnp.sum(w * p**2, axis=0),
        "sum_yp": jnp.sum(w * y * p, axis=0),
        "min_y": jnp.min(jnp.where(w > 0, targets_BxT, big), axis=0),
        "max_y": jnp.max(jnp.where(w > 0, targets_BxT, -big), axis=0),
    }


def merge_sums(a: dict, b: dict) -> dict:
    """Combines the sums of two disjoint sets of rows."""
    merged = {name: a[name] + b[name] for name in SUM_NAMES}
    merged["min_y"] = np.minimum(a["min_y"], b["min_y"])
    merged["max_y"] = np.maximum(a["max_y"], b["max_y"])
    return merged


def metrics_from_sums(sums: dict) -> dict[str, np.ndarray]:
    """RMSE (target units), nRMSE (% of the measured range), R² and Pearson r, per target."""
    s = {k: np.asarray(v, np.float64) for k, v in sums.items()}
    n = s["count"]
    rmse = np.sqrt(s["sse"] / n)
    variance_y = s["sum_y2"] / n - (s["sum_y"] / n) ** 2
    variance_p = s["sum_p2"] / n - (s["sum_p"] / n) ** 2
    covariance = s["sum_yp"] / n - (s["sum_y"] / n) * (s["sum_p"] / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - (s["sse"] / n) / variance_y
        pearson = covariance / np.sqrt(variance_y * variance_p)
        nrmse = 100.0 * rmse / (s["max_y"] - s["min_y"])
    return {"rmse": rmse, "nrmse_pct": nrmse, "r2": r2, "pearson_r": np.where(variance_p > 0, pearson, np.nan)}


def test_chunks(folds: Folds, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each fold's held-out record indices in chunks [K, E], padded (with record 0) to equal
    length across folds, with the validity mask [K, E]."""
    per_fold = [np.flatnonzero(test_N) for test_N in folds.test_KxN]
    longest = max(len(indices) for indices in per_fold)
    for start in range(0, longest, chunk_size):
        indices_KxE = np.zeros((len(per_fold), chunk_size), np.int64)
        valid_KxE = np.zeros((len(per_fold), chunk_size), bool)
        for k, indices in enumerate(per_fold):
            part = indices[start : start + chunk_size]
            indices_KxE[k, : len(part)] = part
            valid_KxE[k, : len(part)] = True
        yield indices_KxE, valid_KxE


def predict_physical(apply_fn: Callable, params, images_BxHxWxS: jax.Array, mean_T: jax.Array, std_T: jax.Array) -> jax.Array:
    """One fold model's predictions [B, T] in the targets' units, from uint8 ROI images: the
    model sees images scaled to [0, 1] (as in training) and predicts standardised targets."""
    standardised_BxT = apply_fn({"params": params}, images_BxHxWxS.astype(jnp.float32) / 255.0, train=False)
    return standardised_BxT * std_T[None, :] + mean_T[None, :]


def make_eval_step(apply_fn: Callable, rt: runtime.Runtime) -> Callable:
    """(params_K, images [K,E,H,W,S] uint8, targets [K,E,T] physical, valid [K,E], mean_KxT,
    std_KxT) → (predictions in physical units [K,E,T], metric sums [K,T]), over the fold axis
    as the runtime runs it."""

    def per_fold(params, images_ExHxWxS, targets_ExT, valid_E, mean_T, std_T):
        predictions_ExT = predict_physical(apply_fn, params, images_ExHxWxS, mean_T, std_T)
        return predictions_ExT, metric_sums(predictions_ExT, targets_ExT, valid_E, mean_T)

    return rt.fold_program(per_fold)


def collect_predictions(chunks: Iterator, num_records: int, num_targets: int) -> np.ndarray:
    """Scatters [K, E, T] prediction chunks back to one [N, T] array (each record is held out once)."""
    predictions_NxT = np.full((num_records, num_targets), np.nan, np.float32)
    for indices_KxE, valid_KxE, predictions_KxExT in chunks:
        predictions_NxT[indices_KxE[valid_KxE]] = predictions_KxExT[valid_KxE]
    return predictions_NxT


def fold_metrics(predictions_NxT: np.ndarray, targets_NxT: np.ndarray, folds: Folds, stats: LabelStats) -> list[dict[str, np.ndarray]]:
    """Metrics of each fold on its held-out records, from the sums (used for every model)."""
    results = []
    for test_N, shift_T in zip(folds.test_KxN, stats.mean_KxT):
        sums = metric_sums(jnp.asarray(predictions_NxT[test_N]), jnp.asarray(targets_NxT[test_N]),
                           jnp.ones(int(test_N.sum()), bool), jnp.asarray(shift_T))
        results.append(metrics_from_sums(jax.device_get(sums)))
    return results


def mean_predictor(targets_NxT: np.ndarray, folds: Folds) -> np.ndarray:
    """Baseline: each held-out record predicted by its fold's training mean."""
    predictions_NxT = np.full_like(targets_NxT, np.nan)
    for train_N, test_N in zip(folds.train_KxN, folds.test_KxN):
        predictions_NxT[test_N] = targets_NxT[train_N].mean(axis=0)
    return predictions_NxT


def ridge_predictor(features_NxA: np.ndarray, targets_NxT: np.ndarray, folds: Folds, alpha: float) -> np.ndarray:
    """Baseline: ridge regression from architecture labels (standardised with each fold's
    training statistics) to the states, fitted on the fold's training records only."""
    predictions_NxT = np.full_like(targets_NxT, np.nan)
    for train_N, test_N in zip(folds.train_KxN, folds.test_KxN):
        x_mean, x_std = features_NxA[train_N].mean(0), np.maximum(features_NxA[train_N].std(0), 1e-8)
        y_mean = targets_NxT[train_N].mean(0)
        x = (features_NxA[train_N] - x_mean) / x_std
        gram = x.T @ x + alpha * np.eye(x.shape[1])
        weights_AxT = np.linalg.solve(gram, x.T @ (targets_NxT[train_N] - y_mean))
        predictions_NxT[test_N] = ((features_NxA[test_N] - x_mean) / x_std) @ weights_AxT + y_mean
    return predictions_NxT
