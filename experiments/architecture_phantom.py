"""The architecture stage on phantom frames against the phantom's true geometry.

    python experiments/architecture_phantom.py [--participants=6 --frames_per_participant=25]
        [--json=docs/figures/architecture_phantom.json]

Phantom participants (other simulated people than any regression data set: seed offset
9000) are rendered at 256×256 pixels of 0.2 mm (phantom_paper's frames), one 4 s combined
trial each (angle and activation varying together), and frames spread evenly over it are
measured. Truth, in TimTrack's definitions and the same canonical orientation as the
measurement (the phantom's fascicles fall to the right, so the truth is mirrored too): the
aponeurosis angles are those of the least-squares lines through the true inner-edge curves
over the frame; the fascicle angle is that of the chord of the fascicle whose ends are
centred on the frame (from the phantom's pennation to the deep aponeurosis); thickness is
the vertical distance between the true inner edges at the canonical left edge; fascicle
length is TimTrack's thickness / sin(pennation) from those true values, and, beside it, the
phantom's own (curved, mechanical) fascicle length.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from absl import flags

from muscle_jax import cli
from muscle_jax.architecture import geometry, measure
from muscle_jax.data.phantom.config import PhantomConfig
from muscle_jax.data.phantom.simulate import simulate_trial

SEED_OFFSET = 9_000


def define_flags() -> None:
    flags.DEFINE_integer("participants", 6, "phantom participants")
    flags.DEFINE_integer("frames_per_participant", 25, "frames measured per participant, spread over its trial")
    flags.DEFINE_string("json", "docs/figures/architecture_phantom.json", "where to write every figure")


def phantom_config(participants: int) -> PhantomConfig:
    return PhantomConfig(num_participants=participants, frame_hw=(256, 256), roi_hw=(64, 64), mm_per_px=0.2,
                         passive_duration_s=0.0, isometric_duration_s=0.0, num_combined_trials=1,
                         combined_duration_s=4.0, seed=SEED_OFFSET, workers=1)


def true_architecture(trial: dict, k: int, width: int, mm_per_px: float) -> dict:
    """The frame's true architecture in TimTrack's definitions (module docstring)."""
    superficial, deep = trial["superficial_coeffs"][k].astype(np.float64), trial["deep_coeffs"][k].astype(np.float64)
    beta_image = float(geometry.angle_deg(geometry.line_through_curve(superficial, (0.0, width - 1.0))[0]))
    gamma_image = float(geometry.angle_deg(geometry.line_through_curve(deep, (0.0, width - 1.0))[0]))
    # The chord of the fascicle centred on the frame: its deep end is `run` columns right of its superficial end.
    run = trial["thickness_mm"][k] / np.tan(np.radians(trial["pennation_deg"][k])) / mm_per_px
    deep_column = 0.5 * (width - 1) + 0.5 * run
    drop = np.polyval(deep, deep_column) - np.polyval(superficial, deep_column - run)
    alpha_image = float(geometry.angle_deg(drop / run))
    alpha, beta, gamma, mirrored = geometry.canonical_orientation(alpha_image, beta_image, gamma_image)
    edge = width - 1.0 if mirrored else 0.0
    thickness = float(np.polyval(deep, edge) - np.polyval(superficial, edge))
    return {"fascicle_angle_deg": alpha, "superficial_aponeurosis_angle_deg": beta, "deep_aponeurosis_angle_deg": gamma,
            "pennation_deg": alpha - beta, "thickness_px": thickness,
            "fascicle_length_px": geometry.fascicle_length(thickness, alpha, beta),
            "phantom_fascicle_length_px": float(trial["fascicle_length_mm"][k] / mm_per_px), "mirrored": mirrored}


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    config = phantom_config(args.participants)
    started = time.perf_counter()
    frames, truths = [], []
    for participant in range(config.num_participants):
        trial = simulate_trial(config, participant, 0)
        for k in np.linspace(0, len(trial["frame"]) - 1, args.frames_per_participant).round().astype(int):
            frames.append(trial["frame_image"][k, ..., 0])
            truths.append(true_architecture(trial, k, config.frame_hw[1], config.mm_per_px))
    rendered = time.perf_counter()
    results = measure.measure_frames(frames)
    measured_at = time.perf_counter()
    found = [r for r in results if r.found]
    report = {"frames": len(frames), "found": len(found), "mm_per_px": config.mm_per_px,
              "seconds": {"render": round(rendered - started, 1), "measure": round(measured_at - rendered, 1)},
              "config": dataclasses.asdict(config), "quantities": {}}
    lines = ["| quantity | RMS error | mean error (bias) | true range |", "| --- | --- | --- | --- |"]
    mirrored_agree = sum(r.mirrored == t["mirrored"] for r, t in zip(results, truths, strict=True) if r.found)
    for quantity in ("fascicle_angle_deg", "superficial_aponeurosis_angle_deg", "deep_aponeurosis_angle_deg",
                     "pennation_deg", "thickness_px", "fascicle_length_px", "phantom_fascicle_length_px"):
        column = "fascicle_length_px" if quantity == "phantom_fascicle_length_px" else quantity
        errors, trues = [], []
        for result, truth in zip(results, truths, strict=True):
            if result.found:
                errors.append(getattr(result, column) - truth[quantity])
                trues.append(truth[quantity])
        errors, trues = np.array(errors), np.array(trues)
        relative = quantity.endswith("_px")
        scale = 100.0 / trues if relative else 1.0
        rms, bias = float(np.sqrt(np.mean((errors * scale) ** 2))), float(np.mean(errors * scale))
        report["quantities"][quantity] = {"rms": rms, "bias": bias, "unit": "%" if relative else "°",
                                          "true_min": float(trues.min()), "true_max": float(trues.max())}
        unit = "%" if relative else "°"
        span = f"{trues.min() * config.mm_per_px:.1f}–{trues.max() * config.mm_per_px:.1f} mm" if relative else \
            f"{trues.min():.1f}–{trues.max():.1f}°"
        lines.append(f"| {quantity} | {rms:.2f} {unit} | {bias:+.2f} {unit} | {span} |")
    report["mirrored_agrees"] = mirrored_agree
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print("\n".join(lines))
    print(f"found {len(found)}/{len(frames)} frames; orientation (mirrored) right in {mirrored_agree}/{len(found)}; "
          f"render {rendered - started:.0f} s, measure {measured_at - rendered:.1f} s; wrote {args.json}")


if __name__ == "__main__":
    cli.run(main, define_flags)
