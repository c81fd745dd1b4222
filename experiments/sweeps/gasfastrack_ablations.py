"""The real GasFasTrack clips (one participant, 24 clips, 6 folds of held-out clips): the ROI
cut from the scanner's calibrated image region (baseline) vs by the segmentation stage, and
single frames vs stacks of three consecutive frames.

Runs use configs/gasfastrack.py unchanged (300 steps). With `roi_source=segmentation`,
frames where the U-Net finds no muscle are left out and counted (skip_bad_frames), so that
run is scored on the frames it could cut; its log says how many.
"""

RUNS = [
    ("calibration_roi", {}),
    ("segmentation_roi", {"dataset.roi_source": "segmentation", "dataset.skip_bad_frames": True}),
    ("frames=3", {"dataset.frame_stack": 3}),
]
