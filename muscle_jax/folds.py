"""Who is held out where.

A fold is a pair of boolean masks over the records of a dataset: the records its model may
learn from, and the records it is evaluated on. Masks are built from group ids only
(participant or trial), so no label or image of a held-out group can shape them.
"""

from __future__ import annotations

import dataclasses
import numpy as np


@dataclasses.dataclass(frozen=True)
class Folds:
    """`train_KxN[k, n]`: record n trains fold k; `test_KxN[k, n]`: record n tests fold k."""

    train_KxN: np.ndarray
    test_KxN: np.ndarray
    held_out_groups: tuple[tuple[int, ...], ...]
    group_by: str

    @property
    def num_folds(self) -> int:
        return self.train_KxN.shape[0]


def make_folds(groups_N: np.ndarray, group_by: str, num_folds: int = 0, max_train_groups: int = 0) -> Folds:
    """Leave-one-group-out (num_folds = 0) or grouped K-fold over the records' group ids.

    Grouped K-fold deals the sorted groups round-robin into `num_folds` test sets, so every
    group is held out exactly once. `max_train_groups` > 0 keeps only the first that many
    training groups of each fold (in sorted order), for the individual-differences ablation.
    """
    unique_groups = np.unique(groups_N)
    if len(unique_groups) < 2:
        raise ValueError(
            f"cross-validation by {group_by} needs at least 2 groups, the dataset has {len(unique_groups)}"
        )
    if num_folds == 0:
        test_sets = [(int(g),) for g in unique_groups]
    else:
        if not 2 <= num_folds <= len(unique_groups):
            raise ValueError(
                f"folds.num_folds={num_folds} must be 0 (leave one {group_by} out) or between 2 and "
                f"the number of {group_by}s ({len(unique_groups)})"
            )
        test_sets = [tuple(int(g) for g in unique_groups[k::num_folds]) for k in range(num_folds)]
    train_rows, test_rows = [], []
    for held_out in test_sets:
        test_N = np.isin(groups_N, held_out)
        train_groups = [g for g in unique_groups if g not in held_out]
        if max_train_groups > 0:
            train_groups = train_groups[:max_train_groups]
        train_rows.append(np.isin(groups_N, train_groups))
        test_rows.append(test_N)
    return Folds(np.stack(train_rows), np.stack(test_rows), tuple(test_sets), group_by)
