"""Muscle phantom: simulated participants whose physiology drives both signals and B-mode frames.

Public API (docs/architecture.md):
  PhantomConfig, PRESETS (phantom_small, phantom_paper, phantom_smoke, phantom_tiny), preset(name)
  simulate_participants(config) -> Iterator[(participant index, list of trial dicts)]
"""

from muscle_jax.data.phantom.config import (
    PRESETS,
    PhantomConfig,
    phantom_paper,
    phantom_small,
    phantom_smoke,
    phantom_tiny,
    preset,
)
from muscle_jax.data.phantom.participants import PARAMETER_RANGES, Participant, draw_participant
from muscle_jax.data.phantom.simulate import participant_for, simulate_participant, simulate_participants, simulate_trial

__all__ = [
    "PARAMETER_RANGES",
    "PRESETS",
    "Participant",
    "PhantomConfig",
    "draw_participant",
    "participant_for",
    "phantom_paper",
    "phantom_small",
    "phantom_smoke",
    "phantom_tiny",
    "preset",
    "simulate_participant",
    "simulate_participants",
    "simulate_trial",
]
