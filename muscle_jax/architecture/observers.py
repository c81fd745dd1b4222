"""The observers' labels of ../shared/data/timtrack_architecture and the agreement measure.

Agreement, as issue 17 defines it: for each image and each observer o, the other two
observers' mean is the reference. The third observer's RMS difference from it (over the
images) is the human limit; the method's RMS difference from the same reference is its
error; both are averaged over the three choices of o. Thickness and fascicle length are
compared as percentages of the reference (100 · (x − reference) / reference). Observers'
fascicle lengths are derived from their own labels as TimTrack does:
thickness / sin(alpha − beta).
"""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np

from muscle_jax.architecture import geometry

TIMTRACK_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "timtrack_architecture"

# Quantity name → (label column or derived, relative?)
QUANTITIES = {
    "fascicle_angle_deg": False,
    "superficial_aponeurosis_angle_deg": False,
    "deep_aponeurosis_angle_deg": False,
    "thickness_pct": True,
    "fascicle_length_pct": True,
}


@dataclasses.dataclass(frozen=True)
class LabelledImage:
    """One image with the measurements of each of its observers (NaN where not given)."""

    dataset: str
    muscle: str
    scanner: str
    participant: str
    image: str  # path under images/
    observers: tuple[str, ...]
    values: dict[str, np.ndarray]  # quantity (without _pct) → one value per observer
    px_per_cm: float


def _number(text: str) -> float:
    return float(text) if text.strip() else float("nan")


def read_labels(directory: Path | str = TIMTRACK_DIR) -> list[LabelledImage]:
    """Every image of labels.csv with its three observers, in file order."""
    path = Path(directory) / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such labels file (the timtrack_architecture data set)")
    by_image: dict[str, list[dict]] = defaultdict(list)
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                row["alpha"], row["beta"] = float(row["alpha_deg"]), float(row["beta_deg"])
                row["thickness"] = float(row["thickness_px"])
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}:{line}: alpha_deg, beta_deg and thickness_px must be numbers ({error})") from error
            by_image[row["image"]].append(row)
    images = []
    for name, rows in by_image.items():
        alpha = np.array([r["alpha"] for r in rows])
        beta = np.array([r["beta"] for r in rows])
        thickness = np.array([r["thickness"] for r in rows])
        gamma = np.array([_number(r["gamma_deg"]) for r in rows])
        length = np.array([geometry.fascicle_length(t, a, b) for t, a, b in zip(thickness, alpha, beta, strict=True)])
        first = rows[0]
        images.append(LabelledImage(
            dataset=f"dataset{first['dataset']}", muscle=first["muscle"], scanner=first["scanner"],
            participant=first["participant"], image=name, observers=tuple(r["observer"] for r in rows),
            values={"fascicle_angle_deg": alpha, "superficial_aponeurosis_angle_deg": beta,
                    "deep_aponeurosis_angle_deg": gamma, "thickness": thickness, "fascicle_length": length},
            px_per_cm=_number(first["px_per_cm"]),
        ))
    return images


def _differences(observers_O: np.ndarray, value: float, relative: bool) -> tuple[np.ndarray, np.ndarray]:
    """(third observer − pair mean, method − pair mean) for each choice of the third observer."""
    count = len(observers_O)
    third, method = np.full(count, np.nan), np.full(count, np.nan)
    for o in range(count):
        reference = np.delete(observers_O, o).mean()
        scale = 100.0 / reference if relative else 1.0
        third[o] = (observers_O[o] - reference) * scale
        method[o] = (value - reference) * scale
    return third, method


@dataclasses.dataclass(frozen=True)
class Agreement:
    """RMS differences from the pair of other observers, averaged over the three pairs."""

    method_rms: float
    observer_rms: float
    num_images: int  # labelled images the method measured
    num_labelled: int  # labelled images with this quantity

    @property
    def ratio(self) -> float:
        return self.method_rms / self.observer_rms if self.observer_rms > 0 else float("nan")


def squared_differences(images: list[LabelledImage], measured: dict[str, dict[str, float]], quantity: str
                        ) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """(method², third observer²) differences from the pair mean, images × 3 choices of the third
    observer, over the labelled images the method measured; their indices in `images`; and how
    many images carry the quantity."""
    relative = QUANTITIES[quantity]
    key = quantity.removesuffix("_pct")
    method_column = {"thickness": "thickness_px", "fascicle_length": "fascicle_length_px"}.get(key, key)
    method_sq, third_sq, kept, labelled = [], [], [], 0
    for index, image in enumerate(images):
        observers_O = image.values[key]
        if np.isnan(observers_O).any():
            continue
        labelled += 1
        value = measured.get(image.image, {}).get(method_column, float("nan"))
        if not np.isfinite(value):
            continue
        third, method = _differences(observers_O, value, relative)
        method_sq.append(method**2)
        third_sq.append(third**2)
        kept.append(index)
    return np.reshape(method_sq, (-1, 3)), np.reshape(third_sq, (-1, 3)), kept, labelled


def _mean_rms(squared_IxO: np.ndarray) -> float:
    """RMS over images for each choice of the third observer, then the mean over the choices."""
    return float(np.mean(np.sqrt(np.mean(squared_IxO, axis=0))))


def agreement(images: list[LabelledImage], measured: dict[str, dict[str, float]], quantity: str) -> Agreement:
    """The method (`measured[image][quantity]`, NaN or absent when not found) against the
    observers of `images`, on the images it measured; observers' RMS over the same images."""
    method_sq, third_sq, kept, labelled = squared_differences(images, measured, quantity)
    if not kept:
        return Agreement(float("nan"), float("nan"), 0, labelled)
    return Agreement(_mean_rms(method_sq), _mean_rms(third_sq), len(kept), labelled)


def ratio_interval(images: list[LabelledImage], measured: dict[str, dict[str, float]], quantity: str,
                   by_image: bool = False, num_resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of method RMS / observer RMS, resampling whole
    participants (images with the same `participant`; each image with `by_image`) with
    replacement; None with fewer than 2 groups."""
    method_sq, third_sq, kept, _ = squared_differences(images, measured, quantity)
    groups = np.array([images[i].image if by_image else images[i].participant for i in kept])
    names = np.unique(groups)
    if len(names) < 2:
        return None
    members = [np.nonzero(groups == name)[0] for name in names]
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(num_resamples):
        chosen = np.concatenate([members[k] for k in rng.integers(0, len(names), len(names))])
        observer = _mean_rms(third_sq[chosen])
        if observer > 0:
            ratios.append(_mean_rms(method_sq[chosen]) / observer)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)
