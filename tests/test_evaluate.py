import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_numpy_rank_promotion", "raise")

from muscle_jax import evaluate, folds


def _direct_metrics(y, p):
    rmse = np.sqrt(np.mean((p - y) ** 2, axis=0))
    r2 = 1 - np.sum((p - y) ** 2, axis=0) / np.sum((y - y.mean(0)) ** 2, axis=0)
    r = np.array([np.corrcoef(y[:, t], p[:, t])[0, 1] for t in range(y.shape[1])])
    return rmse, 100 * rmse / (y.max(0) - y.min(0)), r2, r


def test_metrics_from_chunked_sums_equal_direct_computation():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3)).astype(np.float32) * [1, 10, 0.01]
    p = (y + rng.normal(size=y.shape) * [0.3, 2, 0.004]).astype(np.float32)
    valid = np.ones(50, bool)
    shift = jnp.asarray([0.5, -3.0, 0.01], jnp.float32)  # any shift, as long as it is the same for every chunk
    sums = lambda rows: jax.device_get(  # noqa: E731
        evaluate.metric_sums(jnp.asarray(p[rows]), jnp.asarray(y[rows]), jnp.asarray(valid[rows]), shift))
    whole, first, second = sums(slice(None)), sums(slice(0, 20)), sums(slice(20, None))
    merged = evaluate.metrics_from_sums(evaluate.merge_sums(first, second))
    direct = _direct_metrics(y.astype(np.float64), p.astype(np.float64))
    for got in (evaluate.metrics_from_sums(whole), merged):
        for name, expected in zip(("rmse", "nrmse_pct", "r2", "pearson_r"), direct):
            np.testing.assert_allclose(got[name], expected, rtol=2e-3)


def test_padding_rows_do_not_count():
    y = jnp.array([[1.0], [2.0], [3.0], [100.0]])
    p = jnp.array([[1.5], [2.0], [2.5], [-100.0]])
    sums = jax.device_get(evaluate.metric_sums(p, y, jnp.array([True, True, True, False]), jnp.zeros(1)))
    metrics = evaluate.metrics_from_sums(sums)
    np.testing.assert_allclose(metrics["rmse"], [np.sqrt(0.5 / 3)], rtol=1e-6)
    np.testing.assert_allclose(metrics["nrmse_pct"], [100 * np.sqrt(0.5 / 3) / 2], rtol=1e-6)


def test_shifted_sums_keep_the_variance_of_a_target_with_a_large_mean():
    # An angle of 1000° ± 0.1°: in float32, E[y²] − E[y]² of the raw values loses the variance
    # entirely; sums of values shifted by the training mean keep R² and r.
    rng = np.random.default_rng(2)
    y = (1000.0 + 0.1 * rng.normal(size=(400, 1))).astype(np.float32)
    p = (y + 0.02 * rng.normal(size=y.shape)).astype(np.float32)
    sums = jax.device_get(evaluate.metric_sums(jnp.asarray(p), jnp.asarray(y), jnp.ones(400, bool), jnp.asarray([1000.02])))
    got = evaluate.metrics_from_sums(sums)
    _, _, r2, r = _direct_metrics(y.astype(np.float64), p.astype(np.float64))
    np.testing.assert_allclose(got["r2"], r2, rtol=1e-3)
    np.testing.assert_allclose(got["pearson_r"], r, rtol=1e-3)
    unshifted = evaluate.metrics_from_sums(jax.device_get(
        evaluate.metric_sums(jnp.asarray(p), jnp.asarray(y), jnp.ones(400, bool), jnp.zeros(1))))
    assert not np.allclose(unshifted["r2"], r2, rtol=1e-2)  # what the shift is for


def test_baselines_use_training_records_only():
    groups = np.repeat([0, 1, 2], 40)
    fold_set = folds.make_folds(groups, "participant")
    rng = np.random.default_rng(1)
    features = rng.normal(size=(120, 3))
    targets = (features @ np.array([[2.0, 0.0], [-1.0, 0.5], [0.0, 3.0]]) + [5.0, -2.0]).astype(np.float64)
    targets_perturbed = targets.copy()
    targets_perturbed[groups == 0] += 1000.0  # only fold 0's held-out participant changes
    for predictor in (lambda t: evaluate.mean_predictor(t, fold_set),
                      lambda t: evaluate.ridge_predictor(features, t, fold_set, alpha=1e-6)):
        clean, perturbed = predictor(targets), predictor(targets_perturbed)
        np.testing.assert_array_equal(clean[groups == 0], perturbed[groups == 0])
    ridge = evaluate.ridge_predictor(features, targets, fold_set, alpha=1e-6)
    np.testing.assert_allclose(ridge, targets, atol=1e-4)  # exact linear relation is recovered


def test_test_chunks_cover_each_held_out_record_once():
    groups = np.array([0] * 5 + [1] * 2 + [2] * 7)
    fold_set = folds.make_folds(groups, "participant")
    seen = []
    for indices_KxE, valid_KxE in evaluate.test_chunks(fold_set, chunk_size=3):
        assert indices_KxE.shape == (3, 3)
        for k in range(3):
            assert np.all(groups[indices_KxE[k][valid_KxE[k]]] == k)
        seen.extend(indices_KxE[valid_KxE].tolist())
    assert sorted(seen) == list(range(len(groups)))
