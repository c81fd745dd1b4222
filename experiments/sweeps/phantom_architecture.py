"""Model family, depth and width on phantom_small (8 participants, leave one out).

Every run trains 200 steps of 8 folds × 32 frames (the default's 350 steps cut for time), so
the baseline here is the default network at a shorter schedule; the runs differ from it only
in the named field.
"""

FIXED = {"train.num_steps": 200}

RUNS = [
    ("convnet_16-128", {}),
    ("convnet_narrow_8-64", {"model.channels": (8, 16, 32, 64)}),
    ("convnet_wide_24-192", {"model.channels": (24, 48, 96, 192)}),
    ("convnet_shallow_16-64", {"model.channels": (16, 32, 64)}),
    ("convnet_deep_16-256", {"model.channels": (16, 32, 64, 128, 256)}),
    ("resnet_16-128", {"model.name": "resnet"}),
]
