"""The architecture stage against three trained observers, per data set (issue 17's table).

    python experiments/architecture_agreement.py [--json=docs/figures/architecture_agreement.json]
        [--figure=docs/figures/architecture_overlays.png]

For each data set of ../shared/data/timtrack_architecture and each quantity: the method's
RMS difference from the mean of two observers beside the third observer's RMS difference
from the same two, averaged over the three pairs (`muscle_jax.architecture.observers`), their
ratio with a 95 % bootstrap interval (participants resampled; dataset 2 is one person, so its
images are resampled), and a baseline: each image given the observers' mean over the other
participants' images of its data set (dataset 2: the other images). Thickness and fascicle
length are in % of the pair's mean. Also the fascicle length difference in cm on dataset 2,
the one data set with a scale, beside TimTrack's published agreement.

The method has no learned part of its own (the aponeurosis U-Net was trained on DL_Track
images only), so no observer label reaches it: dataset 1 needs no leave-one-participant-out
folds, and datasets 2 and 4 are muscles and scanners it never saw in training. Its design
choices were made while looking at the agreement on all three (docs/architecture_measurement.md).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
from absl import flags

from muscle_jax import cli
from muscle_jax.architecture import measure, observers
from muscle_jax.data.readers.images import read_gray_image

DATASETS = ("dataset1", "dataset2", "dataset4")
DESCRIPTIONS = {
    "dataset1": "vastus lateralis, GE Logiq E9, 6 participants",
    "dataset2": "lateral gastrocnemius, GE Logiq E9, 1 participant (unseen muscle)",
    "dataset4": "medial gastrocnemius, Telemed + Philips screen captures (unseen muscle and scanners)",
}
# TimTrack's published agreement with three observers (van der Zee & Kuo 2022), VL and gastrocnemius.
TIMTRACK_PUBLISHED = {"fascicle_length_rmsd_cm": 0.52, "coefficient_of_multiple_correlation": 0.98}
_COLUMN = {"thickness": "thickness_px", "fascicle_length": "fascicle_length_px"}


FIGURE_IMAGES = ("dataset1/S2/S2_R20_step_125.png", "dataset2/range-of-motion/gastroc_range_of_motion_302.png",
                 "dataset4/SampleA/GM_T_10.png", "dataset4/SampleB/GM_P_5.bmp")


def define_flags() -> None:
    flags.DEFINE_string("json", "docs/figures/architecture_agreement.json", "where to write every figure")
    flags.DEFINE_string("figure", "docs/figures/architecture_overlays.png", "overlays of four labelled images")
    flags.DEFINE_string("labels", str(observers.TIMTRACK_DIR), "the timtrack_architecture folder")


def overlay_figure(path: Path, labels: Path, images: list, results: list) -> None:
    """The stage's overlays on one image of each data set and scanner, 2 × 2, with the observers' means."""
    from PIL import Image, ImageDraw

    from muscle_jax.architecture.overlay import draw_overlay

    panels = []
    for name in FIGURE_IMAGES:
        k = next(i for i, image in enumerate(images) if image.image == name)
        picture = Image.fromarray(draw_overlay(read_gray_image(labels / "images" / name), results[k]))
        picture.thumbnail((600, 420))
        values = images[k].values
        ImageDraw.Draw(picture).text(
            (6, picture.height - 28), f"{name}\nobservers: fascicle {values['fascicle_angle_deg'].mean():.1f} deg, "
            f"thickness {values['thickness'].mean():.0f} px", fill=(255, 255, 0))
        panels.append(picture)
    width, height = max(p.width for p in panels), max(p.height for p in panels)
    sheet = Image.new("RGB", (2 * width, 2 * height))
    for k, panel in enumerate(panels):
        sheet.paste(panel, ((k % 2) * width, (k // 2) * height))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def baseline_values(images: list[observers.LabelledImage], by_image: bool) -> dict[str, dict[str, float]]:
    """Each image given the observers' mean over the other participants' (or images') of its set."""
    values = {}
    for image in images:
        others = [o for o in images if (o.image != image.image if by_image else o.participant != image.participant)]
        values[image.image] = {
            _COLUMN.get(key, key): float(np.nanmean([np.mean(o.values[key]) for o in others]))
            for key in ("fascicle_angle_deg", "superficial_aponeurosis_angle_deg", "deep_aponeurosis_angle_deg",
                        "thickness", "fascicle_length")
        }
    return values


def length_cm_differences(images: list[observers.LabelledImage], measured: dict) -> dict:
    """Fascicle length in cm (images with a scale): the method's and the third observer's
    RMS and mean absolute difference from the pair mean, averaged over the three pairs."""
    method, third = [], []
    for image in images:
        value = measured[image.image].get("fascicle_length_px", float("nan"))
        if not np.isfinite(image.px_per_cm) or not np.isfinite(value):
            continue
        lengths = image.values["fascicle_length"] / image.px_per_cm
        for o in range(3):
            reference = np.delete(lengths, o).mean()
            method.append(value / image.px_per_cm - reference)
            third.append(lengths[o] - reference)
    if not method:
        return {}
    method, third = np.array(method), np.array(third)
    return {"images": len(method) // 3, "method_rms_cm": float(np.sqrt(np.mean(method**2))),
            "observer_rms_cm": float(np.sqrt(np.mean(third**2))), "method_mean_abs_cm": float(np.mean(np.abs(method))),
            "observer_mean_abs_cm": float(np.mean(np.abs(third)))}


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    images = observers.read_labels(args.labels)
    started = time.perf_counter()
    results = measure.measure_frames([read_gray_image(Path(args.labels) / "images" / image.image) for image in images])
    seconds = time.perf_counter() - started
    measured = {image.image: {**result.__dict__} for image, result in zip(images, results, strict=True)}
    report = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
              "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "seconds": round(seconds, 1), "timtrack_published": TIMTRACK_PUBLISHED,
              "config": json.loads(measure.default_config().to_json()), "datasets": {}}
    lines = ["| data set | quantity | method RMS | third observer RMS | ratio [95 % CI] | baseline RMS | images measured |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for dataset in DATASETS:
        subset = [image for image in images if image.dataset == dataset]
        by_image = dataset != "dataset1"
        baseline = baseline_values(subset, by_image)
        found = [measured[image.image]["found"] for image in subset]
        entry = {"description": DESCRIPTIONS[dataset], "images": len(subset), "found": int(sum(found)),
                 "not_found_reasons": dict(Counter(measured[i.image]["reason"] for i in subset if not measured[i.image]["found"])),
                 "quantities": {}}
        for quantity in observers.QUANTITIES:
            method = observers.agreement(subset, measured, quantity)
            if method.num_labelled == 0:
                continue
            base = observers.agreement(subset, baseline, quantity)
            interval = observers.ratio_interval(subset, measured, quantity, by_image=by_image)
            entry["quantities"][quantity] = {
                "method_rms": method.method_rms, "observer_rms": method.observer_rms, "ratio": method.ratio,
                "ratio_ci95": interval, "baseline_rms": base.method_rms, "baseline_observer_rms": base.observer_rms,
                "images_measured": method.num_images, "images_labelled": method.num_labelled,
            }
            unit = "%" if quantity.endswith("_pct") else "°"
            ci = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
            lines.append(f"| {dataset} | {quantity.removesuffix('_pct').removesuffix('_deg').replace('_', ' ')} ({unit}) | "
                         f"{method.method_rms:.2f} | {method.observer_rms:.2f} | **{method.ratio:.2f}**{ci} | "
                         f"{base.method_rms:.2f} | {method.num_images}/{method.num_labelled} |")
        entry["fascicle_length_cm"] = length_cm_differences(subset, measured)
        report["datasets"][dataset] = entry
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    if args.figure:
        overlay_figure(Path(args.figure), Path(args.labels), images, results)
    print("\n".join(lines))
    for dataset in DATASETS:
        entry = report["datasets"][dataset]
        print(f"{dataset} ({entry['description']}): found {entry['found']}/{entry['images']}; not found: {entry['not_found_reasons']}")
        if entry["fascicle_length_cm"]:
            print(f"  fascicle length in cm: {entry['fascicle_length_cm']}")
    print(f"TimTrack published: {TIMTRACK_PUBLISHED}; {seconds:.1f} s for {len(images)} images; wrote {args.json}")


if __name__ == "__main__":
    cli.run(main, define_flags)
