"""What a phantom data set is made of: participants, recording protocol and image geometry."""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class PhantomConfig:
    """Everything that fixes a phantom data set; the same config gives the same arrays.

    Attributes:
      num_participants: simulated participants, each with its own physiology and probe placement.
      frame_hw: (rows, columns) of the full B-mode frame (`frame_image`, `mask`).
      roi_hw: (rows, columns) of the ROI `image` resampled between the aponeuroses.
      frame_rate_hz: ultrasound frame rate; every signal is sampled once per frame.
      mm_per_px: pixel size of the full frame (square pixels); the field of view is
        frame_hw * mm_per_px (51 mm deep and wide by default, like a 6 cm linear probe).
      roi_column_fraction: the ROI spans these fractions of the frame width (left, right).
      passive_duration_s: length of the passive ankle-rotation trial.
      isometric_angles_deg: one isometric trial per fixed ankle angle (positive = dorsiflexion).
      isometric_duration_s: length of each isometric trial.
      num_combined_trials: trials in which angle and activation vary independently (2019 design).
      combined_duration_s: length of each of those trials.
      seed: the one seed from which every participant, trial, noise and speckle draw derives.
      workers: processes generating participants in parallel (0 or 1 = in this process);
        the arrays do not depend on it.
    """

    num_participants: int = 8
    frame_hw: tuple[int, int] = (128, 128)
    roi_hw: tuple[int, int] = (64, 64)
    frame_rate_hz: float = 25.0
    mm_per_px: float = 0.4
    roi_column_fraction: tuple[float, float] = (0.15, 0.85)
    passive_duration_s: float = 6.0
    isometric_angles_deg: tuple[float, ...] = (-10.0, 10.0)
    isometric_duration_s: float = 6.0
    num_combined_trials: int = 3
    combined_duration_s: float = 4.0
    seed: int = 0
    workers: int = 2

    def __post_init__(self):
        problems = []
        if self.num_participants < 1:
            problems.append(f"num_participants must be >= 1, got {self.num_participants}")
        if len(self.frame_hw) != 2 or min(self.frame_hw) < 32:
            problems.append(f"frame_hw must be (rows, columns), each >= 32, got {self.frame_hw}")
        if len(self.roi_hw) != 2 or min(self.roi_hw) < 2:
            problems.append(f"roi_hw must be (rows, columns), each >= 2, got {self.roi_hw}")
        if self.frame_rate_hz <= 0 or self.mm_per_px <= 0:
            problems.append("frame_rate_hz and mm_per_px must be positive")
        left, right = self.roi_column_fraction
        if not 0.0 <= left < right <= 1.0:
            problems.append(f"roi_column_fraction must satisfy 0 <= left < right <= 1, got {self.roi_column_fraction}")
        durations = (self.passive_duration_s, self.isometric_duration_s, self.combined_duration_s)
        if min(durations) < 0:
            problems.append(f"trial durations must be >= 0, got {durations}")
        if self.num_combined_trials < 0:
            problems.append(f"num_combined_trials must be >= 0, got {self.num_combined_trials}")
        if any(abs(a) > 30 for a in self.isometric_angles_deg):
            problems.append(f"isometric_angles_deg must lie within ±30°, got {self.isometric_angles_deg}")
        if not self.trial_durations_s():
            problems.append("no trials: give at least one trial a positive duration")
        if self.workers < 0:
            problems.append(f"workers must be >= 0, got {self.workers}")
        if problems:
            raise ValueError("PhantomConfig: " + "; ".join(problems))

    @property
    def roi_column_range(self) -> tuple[float, float]:
        """Frame columns (pixels) between which the ROI is resampled."""
        width = self.frame_hw[1]
        return (self.roi_column_fraction[0] * (width - 1), self.roi_column_fraction[1] * (width - 1))

    def trial_durations_s(self) -> list[tuple[str, float, float | None]]:
        """(kind, duration, fixed angle or None) for each trial in recording order."""
        trials: list[tuple[str, float, float | None]] = []
        if self.passive_duration_s > 0:
            trials.append(("passive", self.passive_duration_s, None))
        if self.isometric_duration_s > 0:
            trials += [("isometric", self.isometric_duration_s, angle) for angle in self.isometric_angles_deg]
        if self.combined_duration_s > 0:
            trials += [("combined", self.combined_duration_s, None)] * self.num_combined_trials
        return trials


def phantom_small() -> PhantomConfig:
    """The CPU default: 8 participants, 30 s each at 25 Hz (750 frames), 128×128 frames, 64×64 ROI."""
    return PhantomConfig()


def phantom_paper() -> PhantomConfig:
    """Paper scale: 19 participants, 4 minutes each at 25 Hz (6000 frames), 256×256 frames at 0.2 mm/px.

    Recording length per participant is our reading of the study's scale (a few minutes of
    passive, isometric and combined trials per participant), not a number quoted from it.
    """
    return PhantomConfig(
        num_participants=19,
        frame_hw=(256, 256),
        roi_hw=(128, 128),
        mm_per_px=0.2,
        passive_duration_s=30.0,
        isometric_angles_deg=(-15.0, -5.0, 5.0, 15.0),
        isometric_duration_s=30.0,
        num_combined_trials=3,
        combined_duration_s=30.0,
        workers=8,
    )


def phantom_tiny() -> PhantomConfig:
    """For tests and smoke runs (about a second): 2 participants, 3 trials of ~1 s, 64×64 frames."""
    return PhantomConfig(
        num_participants=2,
        frame_hw=(64, 64),
        roi_hw=(16, 24),
        mm_per_px=0.8,
        passive_duration_s=1.0,
        isometric_angles_deg=(5.0,),
        isometric_duration_s=1.0,
        num_combined_trials=1,
        combined_duration_s=1.2,
        workers=1,
    )


def phantom_smoke() -> PhantomConfig:
    """The `phantom_smoke` dataset's: three participants with a few seconds of 64×64 frames and
    32×32 ROIs, so the whole job runs in seconds (configs/smoke.py, the test suite)."""
    return dataclasses.replace(
        phantom_small(), num_participants=3, frame_hw=(64, 64), roi_hw=(32, 32), passive_duration_s=1.0,
        isometric_angles_deg=(0.0,), isometric_duration_s=1.0, num_combined_trials=2, combined_duration_s=1.0,
    )


# The one table of presets: dataset builder configs, the U-Net's phantom frames and the
# phantom's own command line all take their names from here.
PRESETS: dict[str, Callable[[], PhantomConfig]] = {
    "phantom_small": phantom_small,
    "phantom_paper": phantom_paper,
    "phantom_smoke": phantom_smoke,
    "phantom_tiny": phantom_tiny,
}


def preset(name: str, field: str = "phantom preset") -> PhantomConfig:
    """The preset called `name`; an error naming `field` and the known presets otherwise."""
    if name not in PRESETS:
        raise ValueError(f"{field} {name!r} is not one of {sorted(PRESETS)}")
    return PRESETS[name]()
