"""Training seed alone: the default experiment with seeds 0, 1 and 2, nothing else changed.

The bootstrap intervals of a run are over folds (held-out participants), not over training
runs, so they do not show how far the same config lands with another initialisation,
dropout and augmentation draw. The ΔRMSE of seeds 1 and 2 against seed 0 is that spread:
a setting whose paired ΔRMSE is no larger than these has not shown an effect.
"""

RUNS = [
    ("seed0", {"seed": 0}),
    ("seed1", {"seed": 1}),
    ("seed2", {"seed": 2}),
]
