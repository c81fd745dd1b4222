"""Muscle architecture from every frame: fascicle angle, aponeurosis angles, pennation,
thickness and fascicle length, in TimTrack's definitions.

    measure_frames(frames, regions=None, config=None) -> list[FrameArchitecture]

Modules: `region` (the B-mode image inside a screen capture), `aponeurosis_network` (the
shipped U-Net at any region size, compiled once), `orientation` (the fascicles' direction
from line evidence), `geometry` (TimTrack's definitions), `measure` (the stage),
`observers` (the labels of ../shared/data/timtrack_architecture and the agreement measure).
The CLI is `python -m muscle_jax.architecture`.
"""

from muscle_jax.architecture.measure import FrameArchitecture, default_config, measure_frames

__all__ = ["FrameArchitecture", "default_config", "measure_frames"]
