"""Mask quality at the input resolution: Dice and IoU per image of a list of DL_Track pairs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np

from muscle_jax.models.unet import UNet
from muscle_jax.segmentation.dl_track import Pair, read_mask
from muscle_jax.data.readers.images import read_gray_image
from muscle_jax.segmentation.network import predict_probabilities_NxHxW


def dice_and_iou(predicted_HxW: np.ndarray, true_HxW: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks; both empty counts as perfect agreement."""
    intersection = np.logical_and(predicted_HxW, true_HxW).sum()
    total = predicted_HxW.sum() + true_HxW.sum()
    union = total - intersection
    if total == 0:
        return 1.0, 1.0
    return float(2 * intersection / total), float(intersection / union)


def iter_predictions(
    model: UNet, params: Any, input_hw: tuple[int, int], pairs: list[Pair], batch_size: int
) -> Iterator[tuple[Pair, np.ndarray, np.ndarray, np.ndarray]]:
    """(pair, frame_HxW uint8, true mask_HxW bool, probabilities_HxW) at each image's own size.

    Images are batched by size, so the order follows the sizes, not `pairs`.
    """
    by_shape = defaultdict(list)
    for pair in pairs:
        by_shape[pair.size_wh].append(pair)
    for group in by_shape.values():
        frames = np.stack([read_gray_image(p.image_path) for p in group])
        probabilities = predict_probabilities_NxHxW(model, params, input_hw, frames, batch_size)
        for pair, frame, probability in zip(group, frames, probabilities, strict=True):
            yield pair, frame, read_mask(pair.mask_path), probability


def mask_metrics(
    model: UNet, params: Any, input_hw: tuple[int, int], pairs: list[Pair], batch_size: int, threshold: float = 0.5
) -> dict[str, float]:
    """Mean and spread of per-image Dice and IoU at the input resolution, plus pooled Dice."""
    dice, iou, intersection, total = [], [], 0, 0
    for _, _, true, probability in iter_predictions(model, params, input_hw, pairs, batch_size):
        predicted = probability >= threshold
        d, i = dice_and_iou(predicted, true)
        dice.append(d)
        iou.append(i)
        intersection += int(np.logical_and(predicted, true).sum())
        total += int(predicted.sum() + true.sum())
    return {
        "num_images": len(dice),
        "dice_mean": float(np.mean(dice)),
        "dice_median": float(np.median(dice)),
        "dice_min": float(np.min(dice)),
        "iou_mean": float(np.mean(iou)),
        "dice_pooled": 2 * intersection / max(total, 1),
    }
