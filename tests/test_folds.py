import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from muscle_jax import folds


def test_leave_one_group_out_holds_each_group_out_once_and_never_trains_on_it():
    groups_N = np.array([3, 3, 1, 1, 1, 7, 7, 5])
    result = folds.make_folds(groups_N, "participant")
    assert result.num_folds == 4
    assert result.held_out_groups == ((1,), (3,), (5,), (7,))
    np.testing.assert_array_equal(result.test_KxN.sum(axis=0), np.ones(len(groups_N)))
    assert not np.any(result.train_KxN & result.test_KxN)
    np.testing.assert_array_equal(result.train_KxN | result.test_KxN, np.ones_like(result.train_KxN))


def test_grouped_k_fold_partitions_groups():
    groups_N = np.repeat(np.arange(10), 3)
    result = folds.make_folds(groups_N, "trial", num_folds=3)
    assert result.num_folds == 3
    held_out = sorted(g for fold in result.held_out_groups for g in fold)
    assert held_out == list(range(10))
    for train_N, test_N in zip(result.train_KxN, result.test_KxN):
        assert set(groups_N[train_N]).isdisjoint(groups_N[test_N])


def test_max_train_groups_limits_training_to_that_many_groups():
    groups_N = np.repeat(np.arange(5), 4)
    result = folds.make_folds(groups_N, "participant", max_train_groups=1)
    for k, train_N in enumerate(result.train_KxN):
        trained_on = set(groups_N[train_N])
        assert len(trained_on) == 1 and k not in trained_on


@pytest.mark.parametrize("kwargs, message", [
    ({"groups_N": np.zeros(4, int)}, "at least 2 groups"),
    ({"groups_N": np.arange(4), "num_folds": 9}, "num_folds=9"),
])
def test_bad_fold_requests_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        folds.make_folds(group_by="participant", **kwargs)
