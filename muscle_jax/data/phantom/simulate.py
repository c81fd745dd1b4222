"""One participant's recording end to end, and all participants in parallel processes."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
from collections.abc import Iterator
from concurrent import futures

import numpy as np

from muscle_jax.data.phantom import imaging, mechanics, protocol
from muscle_jax.data.phantom.config import PhantomConfig
from muscle_jax.data.phantom.participants import Participant, draw_participant
from muscle_jax.data.roi import resample_between_curves

# Independent random streams, spawned in this order from the participant's seed; the last
# spawns one child per trial, which spawns TRIAL_STREAMS, so a trial can be made on its own.
STREAMS = ("physiology", "protocol", "tissue", "trials")
TRIAL_STREAMS = ("signals", "imaging", "placement")
# Between trials the probe is taken off and put back: a new patch of muscle under it.
REPLACEMENT_OFFSET_MM = 20.0
REPLACEMENT_TILT_DEG = 2.0


def participant_streams(config: PhantomConfig, index: int) -> dict:
    """Random generators of participant `index` (they depend only on config.seed and index);
    "trials" is a list of per-trial dicts of generators."""
    if not 0 <= index < config.num_participants:
        raise ValueError(f"participant index {index} outside 0..{config.num_participants - 1}")
    participant_seed = np.random.SeedSequence(config.seed).spawn(config.num_participants)[index]
    children = dict(zip(STREAMS, participant_seed.spawn(len(STREAMS))))
    streams = {name: np.random.default_rng(children[name]) for name in STREAMS[:-1]}
    num_trials = len(config.trial_durations_s())
    streams["trials"] = [
        {name: np.random.default_rng(seq) for name, seq in zip(TRIAL_STREAMS, trial_seed.spawn(len(TRIAL_STREAMS)))}
        for trial_seed in children["trials"].spawn(num_trials)
    ]
    return streams


def participant_for(config: PhantomConfig, index: int) -> Participant:
    """The physiology of participant `index` (the same one simulate_participants uses)."""
    return draw_participant(participant_streams(config, index)["physiology"])


def replaced_probe(participant: Participant, rng: np.random.Generator) -> Participant:
    """The participant with the probe put back slightly elsewhere for a new trial."""
    return dataclasses.replace(
        participant,
        probe_offset_mm=participant.probe_offset_mm + rng.uniform(-REPLACEMENT_OFFSET_MM, REPLACEMENT_OFFSET_MM),
        probe_tilt_deg=participant.probe_tilt_deg + rng.uniform(-REPLACEMENT_TILT_DEG, REPLACEMENT_TILT_DEG),
    )


def simulate_trial_signals(
    participant: Participant, plan: protocol.TrialPlan, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], mechanics.MuscleState]:
    """Signals of one trial (float64 [T] arrays) and the muscle state behind them."""
    excitation_now = plan.excitation(plan.time_s_T)
    activation = plan.excitation(plan.time_s_T - participant.electromechanical_delay_s)
    state = mechanics.solve_muscle(participant, plan.angle_deg_T, activation)
    signals = {
        "angle_deg": plan.angle_deg_T,
        "torque_nm": mechanics.joint_torque_nm(participant, state, plan.angle_deg_T, rng),
        "emg_v": mechanics.emg_envelope_v(participant, excitation_now, rng),
        "fascicle_length_mm": state.fascicle_length_mm,
        "pennation_deg": state.pennation_deg,
        "thickness_mm": state.thickness_mm,
        "time_s": plan.time_s_T,
    }
    return signals, state


def simulate_trial(config: PhantomConfig, index: int, trial_index: int, participant: Participant | None = None) -> dict:
    """Trial `trial_index` of participant `index`: a dict of arrays with a leading time axis.

    `participant` replaces the drawn physiology (for experiments that change one parameter);
    every random draw stays the same.
    """
    num_trials = len(config.trial_durations_s())
    if not 0 <= trial_index < num_trials:
        raise ValueError(f"trial index {trial_index} outside 0..{num_trials - 1}")
    return _make_trial(_ParticipantRecording(config, index, participant), trial_index)


class _ParticipantRecording:
    """What the trials of one participant share: physiology, plans, tissue and random streams."""

    def __init__(self, config: PhantomConfig, index: int, participant: Participant | None):
        self.config, self.index = config, index
        self.streams = participant_streams(config, index)
        drawn = draw_participant(self.streams["physiology"])
        self.participant = drawn if participant is None else participant
        self.plans = protocol.plan_trials(config, self.streams["protocol"])
        self.canvas = imaging.build_canvas(self.participant, config, self.streams["tissue"])


def _make_trial(recording: _ParticipantRecording, trial_index: int) -> dict:
    config, participant, canvas = recording.config, recording.participant, recording.canvas
    plan = recording.plans[trial_index]
    trial_streams = recording.streams["trials"][trial_index]
    placed = replaced_probe(participant, trial_streams["placement"])
    signals, state = simulate_trial_signals(placed, plan, trial_streams["signals"])
    geometry = imaging.frame_geometry(placed, state, plan.angle_deg_T, trial_streams["imaging"])
    frames_TxHxW, masks_TxHxW = imaging.render_frames(placed, canvas, geometry, config, trial_streams["imaging"])
    superficial_Tx3, deep_Tx3 = imaging.curves_in_pixels(geometry, config)
    roi_TxHxW = np.zeros((len(frames_TxHxW), *config.roi_hw), np.float32)
    for k, (frame, top, bottom) in enumerate(zip(frames_TxHxW, superficial_Tx3, deep_Tx3)):
        roi_TxHxW[k] = resample_between_curves(frame, top, bottom, config.roi_column_range, config.roi_hw)
    return {
        "image": np.clip(np.rint(roi_TxHxW), 0, 255).astype(np.uint8)[..., None],
        "frame_image": frames_TxHxW[..., None],
        "mask": masks_TxHxW[..., None],
        **{name: values.astype(np.float32) for name, values in signals.items()},
        "frame": np.arange(len(frames_TxHxW), dtype=np.int32),
        "superficial_coeffs": superficial_Tx3.astype(np.float32),
        "deep_coeffs": deep_Tx3.astype(np.float32),
        "roi_column_range": np.asarray(config.roi_column_range, np.float32),
        "trial": trial_index,
        "participant": recording.index,
        "kind": plan.kind,
    }


def simulate_participant(config: PhantomConfig, index: int, participant: Participant | None = None) -> list[dict]:
    """All trials of participant `index`, in recording order (see simulate_trial)."""
    recording = _ParticipantRecording(config, index, participant)
    return [_make_trial(recording, trial_index) for trial_index in range(len(recording.plans))]


def _simulate_one(args: tuple[PhantomConfig, int, int]) -> dict:
    return simulate_trial(*args)


def simulate_participants(config: PhantomConfig) -> Iterator[tuple[int, list[dict]]]:
    """Yields (participant index, trials) in participant order, generated in parallel processes.

    Each participant's arrays depend only on config and its index, so they are identical
    whatever `config.workers`. Workers are forked, which is fast and needs no main guard,
    unless JAX is already imported: forking its threads can deadlock, so workers are then
    spawned, and a script calling this must guard its entry point with
    `if __name__ == "__main__":` (as absl `app.run` scripts and pytest do).
    """
    if config.workers <= 1:
        for index in range(config.num_participants):
            yield index, simulate_participant(config, index)
        return
    # Trials rather than participants are the unit of work, which balances the workers.
    num_trials = len(config.trial_durations_s())
    jobs = [(config, index, trial) for index in range(config.num_participants) for trial in range(num_trials)]
    context = multiprocessing.get_context("spawn" if "jax" in sys.modules else "fork")
    with futures.ProcessPoolExecutor(max_workers=config.workers, mp_context=context) as pool:
        trials: list[dict] = []
        for trial in pool.map(_simulate_one, jobs):
            trials.append(trial)
            if len(trials) == num_trials:
                yield trial["participant"], trials
                trials = []
