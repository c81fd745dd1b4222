"""Validation numbers and the overlay figure of the segmentation checkpoint (docs/segmentation.md).

    python experiments/segmentation_evaluate.py \
        [--checkpoint=muscle_jax/segmentation/pretrained/unet_aponeurosis.msgpack] \
        [--figure=docs/figures/segmentation_overlay.png] [--json=docs/figures/segmentation_metrics.json] \
        [--video=../shared/data/gasfastrack/clips/<clip>.mp4 --video_figure=docs/figures/segmentation_gasfastrack.png]

On the held-out DL_Track images (the checkpoint records which), at each image's own size:
Dice and IoU of the thresholded mask; the aponeurosis curves fitted to the predicted and to
the true mask, how often each is found, and the muscle-thickness error (px) where both are.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from muscle_jax import cli  # noqa: E402

from muscle_jax.data.readers.media import read_frames  # noqa: E402
from muscle_jax.segmentation import dl_track, evaluate, segment_frames  # noqa: E402
from muscle_jax.segmentation.curves import default_roi_config, fit_aponeuroses  # noqa: E402
from muscle_jax.segmentation.inference import cached_model  # noqa: E402
from muscle_jax.segmentation.network import SHIPPED_CHECKPOINT  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/gasfastrack/clips/p6_isokinetic030_01_push_01.mp4"


def define_flags() -> None:
    flags.DEFINE_string("checkpoint", str(SHIPPED_CHECKPOINT), "segmentation checkpoint")
    flags.DEFINE_string("figure", "docs/figures/segmentation_overlay.png", "overlay figure path")
    flags.DEFINE_string("json", "docs/figures/segmentation_metrics.json", "metrics JSON path")
    flags.DEFINE_string("video", str(DEFAULT_VIDEO),
                        "a real medial gastrocnemius clip (another scanner, UI around the image) for a second figure; '' = none")
    flags.DEFINE_string("video_figure", "docs/figures/segmentation_gasfastrack.png", "its figure path")


_PANELS = 8
_VIDEO_FRAMES = (0, 60, 120)


def validation_records(checkpoint: str) -> list[dict]:
    """Per held-out image: Dice, IoU, fits of predicted and true masks, and what the figure needs."""
    model, params, input_hw, meta = cached_model(checkpoint)
    config = meta["metrics"]["config"]
    names = set(meta["metrics"]["validation_names"])
    pairs = [p for p in dl_track.list_pairs(config["data"]["dl_track_dir"]) if p.name in names]
    roi_config = default_roi_config()
    records = []
    for pair, frame, true, probability in evaluate.iter_predictions(model, params, input_hw, pairs, 8):
        predicted = probability >= config["eval"]["threshold"]
        dice, iou = evaluate.dice_and_iou(predicted, true)
        records.append({
            "name": pair.name, "size_wh": pair.size_wh, "dice": dice, "iou": iou,
            "fit": fit_aponeuroses(predicted, roi_config), "true_fit": fit_aponeuroses(true, roi_config),
            "frame": frame, "true": true, "predicted": predicted,
        })
    return sorted(records, key=lambda r: r["name"])


def summary(records: list[dict]) -> dict:
    dice = np.array([r["dice"] for r in records])
    iou = np.array([r["iou"] for r in records])
    both = [r for r in records if r["fit"].found and r["true_fit"].found]
    error = np.array([r["fit"].thickness_px - r["true_fit"].thickness_px for r in both])
    relative = np.array([abs(r["fit"].thickness_px / r["true_fit"].thickness_px - 1) for r in both])
    return {
        "num_images": len(records),
        "dice_mean": float(dice.mean()), "dice_median": float(np.median(dice)), "dice_min": float(dice.min()),
        "iou_mean": float(iou.mean()), "iou_median": float(np.median(iou)),
        "found_predicted": int(sum(r["fit"].found for r in records)),
        "found_true": int(sum(r["true_fit"].found for r in records)),
        "thickness_pairs": len(both),
        "thickness_abs_error_px_mean": float(np.abs(error).mean()) if len(both) else float("nan"),
        "thickness_abs_error_px_median": float(np.median(np.abs(error))) if len(both) else float("nan"),
        "thickness_error_px_mean": float(error.mean()) if len(both) else float("nan"),
        "thickness_relative_error_median": float(np.median(relative)) if len(both) else float("nan"),
        "not_found_reasons": sorted({r["fit"].reason for r in records if not r["fit"].found}),
    }


def draw_overlays(records: list[dict], path: Path) -> None:
    """Validation images spread over the Dice range: truth green, prediction magenta, fits yellow."""
    chosen = [records[i] for i in np.linspace(0, len(records) - 1, _PANELS).astype(int)]
    chosen = sorted(chosen, key=lambda r: r["dice"])
    figure, axes = plt.subplots(2, _PANELS // 2, figsize=(4 * _PANELS // 2, 7))
    for axis, record in zip(axes.ravel(), chosen, strict=True):
        gray = record["frame"].astype(np.float32) / 255.0
        rgb = np.stack([gray] * 3, axis=-1) * 0.8
        rgb[record["true"]] = 0.55 * rgb[record["true"]] + 0.45 * np.array([0.0, 1.0, 0.0])
        rgb[record["predicted"]] = 0.55 * rgb[record["predicted"]] + 0.45 * np.array([1.0, 0.0, 1.0])
        axis.imshow(np.clip(rgb, 0, 1))
        fit = record["fit"]
        if fit.found:
            columns = np.linspace(*fit.column_range, 100)
            for coeffs in (fit.superficial_coeffs, fit.deep_coeffs):
                axis.plot(columns, np.polyval(coeffs, columns), color="yellow", linewidth=1)
        label = f"{record['name']}  Dice {record['dice']:.2f}"
        label += f"\nthickness {fit.thickness_px:.0f} px (true {record['true_fit'].thickness_px:.0f})" if fit.found else \
            f"\nnot found: {fit.reason[:40]}"
        axis.set_title(label, fontsize=8)
        axis.axis("off")
    figure.suptitle("Held-out DL_Track images: true mask green, predicted magenta (overlap pale), fitted curves yellow",
                    fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def draw_video_frames(video: Path, checkpoint: str, path: Path) -> None:
    """`segment_frames` on a few frames of a clip no training image came from: mask and curves."""
    frames = list(read_frames(video).images_N[list(_VIDEO_FRAMES)])
    result = segment_frames(np.stack(frames), (128, 128), checkpoint=checkpoint)
    figure, axes = plt.subplots(1, len(frames), figsize=(5.5 * len(frames), 3.6))
    for axis, index, frame, i in zip(axes, _VIDEO_FRAMES, frames, range(len(frames)), strict=True):
        rgb = np.stack([frame / 255.0] * 3, axis=-1)
        rgb[result.masks_NxHxW[i] > 0] = 0.5 * rgb[result.masks_NxHxW[i] > 0] + 0.5 * np.array([1.0, 0.0, 1.0])
        axis.imshow(rgb)
        if result.found_N[i]:
            columns = np.linspace(*result.column_range_Nx2[i], 100)
            for coeffs in (result.superficial_coeffs_NxD[i], result.deep_coeffs_NxD[i]):
                axis.plot(columns, np.polyval(coeffs, columns), color="yellow", linewidth=1)
            label = f"frame {index}: thickness {result.thickness_px_N[i]:.0f} px"
        else:
            label = f"frame {index}: not found ({result.reasons[i]})"
        axis.set_title(label, fontsize=9)
        axis.axis("off")
    figure.suptitle(f"{video.name} (gasfastrack, not in training): predicted mask magenta, fitted curves yellow",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str]) -> None:
    del argv
    args = flags.FLAGS
    records = validation_records(args.checkpoint)
    numbers = summary(records)
    draw_overlays(records, Path(args.figure))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps(numbers, indent=1))
    if args.video and Path(args.video).exists():
        draw_video_frames(Path(args.video), args.checkpoint, Path(args.video_figure))


if __name__ == "__main__":
    cli.run(main, define_flags)
