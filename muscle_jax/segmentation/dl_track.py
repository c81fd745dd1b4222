"""The DL_Track aponeurosis pairs (../shared/data/dl_track_aponeurosis): listing, split, loading.

Layout: `images/<name>.png` (8-bit grayscale) and `masks/<name>.png` (same size, 0/255,
both aponeuroses in one class). The validation split holds out whole images, chosen with a
fixed seed within each image size (a proxy for the scanner), so every scanner appears in
both splits and the split never changes between runs.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from PIL import Image

from muscle_jax.data.readers.images import read_gray_image
from muscle_jax.segmentation.network import resize_BxHxW


@dataclasses.dataclass(frozen=True)
class Pair:
    name: str
    image_path: Path
    mask_path: Path
    size_wh: tuple[int, int]


def list_pairs(data_dir: str | Path) -> list[Pair]:
    """Every image with its mask, sorted by name; a ValueError names any image without a mask."""
    data_dir = Path(data_dir)
    image_dir, mask_dir = data_dir / "images", data_dir / "masks"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise ValueError(f"{data_dir}: expected subfolders images/ and masks/ (DL_Track aponeurosis layout)")
    pairs = []
    for image_path in sorted(image_dir.glob("*.png")):
        mask_path = mask_dir / image_path.name
        if not mask_path.exists():
            raise ValueError(f"{image_path}: no mask at {mask_path}")
        with Image.open(image_path) as image:
            size_wh = image.size
        pairs.append(Pair(image_path.stem, image_path, mask_path, size_wh))
    if not pairs:
        raise ValueError(f"{image_dir}: no .png images")
    return pairs


def split_pairs(pairs: list[Pair], validation_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, validation): within each image size, a seeded shuffle; the first share is validation."""
    by_size = defaultdict(list)
    for pair in pairs:
        by_size[pair.size_wh].append(pair)
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for size in sorted(by_size):
        group = by_size[size]
        order = rng.permutation(len(group))
        num_validation = int(round(validation_fraction * len(group)))
        validation += [group[i] for i in order[:num_validation]]
        train += [group[i] for i in order[num_validation:]]
    return sorted(train, key=lambda p: p.name), sorted(validation, key=lambda p: p.name)


def read_mask(path: str | Path) -> np.ndarray:
    """A 0/255 mask file as bool H×W."""
    return read_gray_image(path) > 127


def load_at_working_resolution(pairs: list[Pair], input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(frames_NxHxW uint8, masks_NxHxW float32 in [0, 1]) resized to `input_hw` like inference does."""
    frames, masks = [], []
    for pair in pairs:
        image = read_gray_image(pair.image_path)
        mask = read_mask(pair.mask_path)
        if mask.shape != image.shape:
            raise ValueError(f"{pair.mask_path}: mask shape {mask.shape} differs from its image's {image.shape}")
        frame, mask = resize_pair(image, mask, input_hw)
        frames.append(frame)
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


def resize_pair(image_HxW: np.ndarray, mask_HxW: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """An image (uint8) and its bool mask resized together to `input_hw` as inference resizes
    frames: (uint8 frame, float32 soft mask in [0, 1])."""
    both_2xHxW = jnp.asarray(np.stack([image_HxW.astype(np.float32), mask_HxW * np.float32(255.0)]))
    resized = np.asarray(resize_BxHxW(both_2xHxW, input_hw))
    return np.clip(np.rint(resized[0]), 0, 255).astype(np.uint8), np.clip(resized[1] / 255.0, 0.0, 1.0).astype(np.float32)
