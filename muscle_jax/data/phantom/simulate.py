"""One participant's recording end to end, and all participants in parallel processes."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from concurrent import futures

import numpy as np

from muscle_jax.data.phantom import imaging, mechanics, protocol
from muscle_jax.data.phantom.config import PhantomConfig
from muscle_jax.data.phantom.participants import Participant, draw_participant
from muscle_jax.data.roi import resample_between_curves

# Independent random streams of one participant, spawned from its seed in this order.
STREAMS = ("physiology", "protocol", "signals", "tissue", "imaging")


def participant_streams(config: PhantomConfig, index: int) -> dict[str, np.random.Generator]:
    """The random generators of participant `index`; they depend only on config.seed and index."""
    if not 0 <= index < config.num_participants:
        raise ValueError(f"participant index {index} outside 0..{config.num_participants - 1}")
    participant_seed = np.random.SeedSequence(config.seed).spawn(config.num_participants)[index]
    return {name: np.random.default_rng(seq) for name, seq in zip(STREAMS, participant_seed.spawn(len(STREAMS)))}


def participant_for(config: PhantomConfig, index: int) -> Participant:
    """The physiology of participant `index` (the same one simulate_participants uses)."""
    return draw_participant(participant_streams(config, index)["physiology"])


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


def simulate_participant(config: PhantomConfig, index: int, participant: Participant | None = None) -> list[dict]:
    """All trials of participant `index` as dicts of arrays with a leading time axis.

    `participant` replaces the drawn physiology (for experiments that change one parameter);
    every random draw stays the same.
    """
    streams = participant_streams(config, index)
    drawn = draw_participant(streams["physiology"])
    participant = drawn if participant is None else participant
    plans = protocol.plan_trials(config, streams["protocol"])
    canvas = imaging.build_canvas(participant, config, streams["tissue"])
    trials = []
    for trial_index, plan in enumerate(plans):
        signals, state = simulate_trial_signals(participant, plan, streams["signals"])
        geometry = imaging.frame_geometry(participant, state, plan.angle_deg_T, streams["imaging"])
        frames_TxHxW, masks_TxHxW = imaging.render_frames(participant, canvas, geometry, config, streams["imaging"])
        superficial_Tx3, deep_Tx3 = imaging.curves_in_pixels(geometry, config)
        roi_TxHxW = np.stack(
            [
                resample_between_curves(frame, top, bottom, config.roi_column_range, config.roi_hw)
                for frame, top, bottom in zip(frames_TxHxW, superficial_Tx3, deep_Tx3)
            ]
        ) if len(frames_TxHxW) else np.zeros((0, *config.roi_hw), np.float32)
        num_frames = frames_TxHxW.shape[0]
        trial = {
            "image": np.clip(np.rint(roi_TxHxW), 0, 255).astype(np.uint8)[..., None],
            "frame_image": frames_TxHxW[..., None],
            "mask": masks_TxHxW[..., None],
            **{name: values.astype(np.float32) for name, values in signals.items()},
            "frame": np.arange(num_frames, dtype=np.int32),
            "superficial_coeffs": superficial_Tx3.astype(np.float32),
            "deep_coeffs": deep_Tx3.astype(np.float32),
            "roi_column_range": np.asarray(config.roi_column_range, np.float32),
            "trial": trial_index,
            "participant": index,
            "kind": plan.kind,
        }
        trials.append(trial)
    return trials


def _simulate_one(args: tuple[PhantomConfig, int]) -> list[dict]:
    config, index = args
    return simulate_participant(config, index)


def simulate_participants(config: PhantomConfig) -> Iterator[tuple[int, list[dict]]]:
    """Yields (participant index, trials) in participant order, generated in parallel processes.

    Each participant's arrays depend only on config and its index, so they are identical
    whatever `config.workers`. Workers are forked, which is fast and needs no main guard,
    unless JAX is already imported: forking its threads can deadlock, so workers are then
    spawned, and a script calling this must guard its entry point with
    `if __name__ == "__main__":` (as absl `app.run` scripts and pytest do).
    """
    jobs = [(config, index) for index in range(config.num_participants)]
    if config.workers <= 1 or config.num_participants == 1:
        for index in range(config.num_participants):
            yield index, simulate_participant(config, index)
        return
    context = multiprocessing.get_context("spawn" if "jax" in sys.modules else "fork")
    with futures.ProcessPoolExecutor(max_workers=min(config.workers, config.num_participants), mp_context=context) as pool:
        for index, trials in enumerate(pool.map(_simulate_one, jobs)):
            yield index, trials
