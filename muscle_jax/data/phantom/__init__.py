"""Muscle phantom: simulated participants whose physiology drives both signals and B-mode frames.

Public API (docs/architecture.md):
  PhantomConfig, phantom_small(), phantom_paper(), phantom_tiny() (tests and smoke runs)
  simulate_participants(config) -> Iterator[(participant index, list of trial dicts)]
"""

from muscle_jax.data.phantom.config import PhantomConfig, phantom_paper, phantom_small, phantom_tiny
from muscle_jax.data.phantom.participants import PARAMETER_RANGES, Participant, draw_participant
from muscle_jax.data.phantom.simulate import participant_for, simulate_participant, simulate_participants, simulate_trial

__all__ = [
    "PARAMETER_RANGES",
    "Participant",
    "PhantomConfig",
    "draw_participant",
    "participant_for",
    "phantom_paper",
    "phantom_small",
    "phantom_tiny",
    "simulate_participant",
    "simulate_participants",
    "simulate_trial",
]
