"""Knobs other than the architecture, one at a time, on phantom_small (8 participants, leave
one out): normalisation, dropout, ROI size, oracle vs predicted ROI, temporal context, and
targets trained jointly vs one model per target.

Every run trains 200 steps of 8 folds × 32 frames (the default's 350 steps cut for time).
`roi=segmentation` builds a phantom dataset whose ROIs the shipped U-Net cut from the rendered
frames; the baseline's come from the phantom's true aponeuroses (the oracle).
"""

from muscle_jax.sweeps import product

FIXED = {"train.num_steps": 200}

RUNS = (
    [("baseline", {})]
    + product({"model.norm": ["group", "layer"]})
    + product({"model.dropout": [0.0, 0.5]})
    + [("roi_32x32", {"dataset.roi_hw": (32, 32)}), ("roi_96x96", {"dataset.roi_hw": (96, 96)})]
    + [("roi=segmentation", {"dataset.roi_source": "segmentation"})]
    + [("frames=3", {"dataset.frame_stack": 3})]
    + [(f"only_{target}", {"dataset.targets": (target,)}) for target in ("angle_deg", "torque_nm", "emg_v")]
)
