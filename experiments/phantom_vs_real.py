"""Phantom frames beside real B-mode frames at the same scale, and a table of image statistics.

    python experiments/phantom_vs_real.py            # ~1 minute on 2 cores

Writes docs/figures/phantom_vs_real.png and rewrites the statistics table between the
markers in docs/phantom.md. Real data: ../shared/data (GasFasTrack clips, calibrated at
0.0883 mm/px, resampled to the phantom's pixel size; DL_Track images with aponeurosis masks,
whose pixel size is not given, analysed at their own scale).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import av  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

from muscle_jax import cli  # noqa: E402
from muscle_jax.data import phantom  # noqa: E402
from muscle_jax.data.phantom import imaging  # noqa: E402
DATA = REPO.parent / "shared" / "data"
GASFASTRACK_MM_PER_PX = 0.0883
# Image region inside the screen capture, MATLAB 1-based [x y w h] (p6_params.mat).
GASFASTRACK_CROP_XYWH = (215, 45, 720, 574)
GASFASTRACK_CLIPS = ("p6_passive_ROM_01_push_01", "p6_isometric_max_01_push_01", "p6_isokinetic030_01_push_01")
TABLE_BEGIN, TABLE_END = "<!-- phantom-vs-real:begin -->", "<!-- phantom-vs-real:end -->"
ORIENTATION_BINS = 36


def gasfastrack_frames(clip: str, count: int, mm_per_px: float) -> list[np.ndarray]:
    """`count` evenly spaced frames of a clip: grey, cropped to the image region, at `mm_per_px`."""
    path = DATA / "gasfastrack" / "clips" / f"{clip}.mp4"
    if not path.exists():
        raise FileNotFoundError(f"{path}: GasFasTrack clip not found (see ../shared/data/README.md)")
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    x, y, w, h = GASFASTRACK_CROP_XYWH
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    factor = GASFASTRACK_MM_PER_PX / mm_per_px
    size = (int(round(w * factor)), int(round(h * factor)))
    return [
        np.asarray(Image.fromarray(frames[k][y - 1 : y - 1 + h, x - 1 : x - 1 + w]).resize(size, Image.BOX))
        for k in picks
    ]


def dl_track_pairs(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `count` DL_Track (image, aponeurosis mask) pairs, in name order."""
    images = sorted((DATA / "dl_track_aponeurosis" / "images").glob("*.png"))[:count]
    if not images:
        raise FileNotFoundError(f"{DATA / 'dl_track_aponeurosis' / 'images'}: no DL_Track images")
    return [
        (np.asarray(Image.open(p).convert("L")), np.asarray(Image.open(p.parent.parent / "masks" / p.name).convert("L")) > 127)
        for p in images
    ]


def regions_from_aponeurosis_mask(apo_HxW: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(aponeurosis, muscle) masks: muscle = columns' rows between the two largest mask components."""
    labels, count = ndimage.label(apo_HxW)
    if count < 2:
        return None
    sizes = ndimage.sum(apo_HxW, labels, range(1, count + 1))
    first, second = (np.argsort(sizes)[::-1][:2] + 1).tolist()
    rows = np.arange(apo_HxW.shape[0])[:, None]
    upper, lower = sorted((first, second), key=lambda k: ndimage.center_of_mass(labels == k)[0])
    upper_bottom = np.where(labels == upper, rows, -1).max(axis=0)
    lower_top = np.where(labels == lower, rows, apo_HxW.shape[0]).min(axis=0)
    valid = (upper_bottom >= 0) & (lower_top < apo_HxW.shape[0])
    muscle = (rows > upper_bottom[None, :] + 2) & (rows < lower_top[None, :] - 2) & valid[None, :]
    apo = (labels == upper) | (labels == lower)
    return apo, muscle


def regions_from_brightest_ridges(frame_HxW: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(aponeurosis, muscle) masks of a GasFasTrack frame: the brightest ridge in the upper and
    lower halves of each column, smoothed by a quadratic fit across columns."""
    height, width = frame_HxW.shape
    smooth = ndimage.gaussian_filter(frame_HxW.astype(float), (1.5, 4.0))
    columns = np.arange(width)
    upper = np.argmax(smooth[: height // 3], axis=0)
    lower = height // 3 + np.argmax(smooth[height // 3 :], axis=0)
    upper_fit = np.polyval(np.polyfit(columns, upper, 2), columns)
    lower_fit = np.polyval(np.polyfit(columns, lower, 2), columns)
    rows = np.arange(height)[:, None]
    apo = (np.abs(rows - upper_fit[None, :]) <= 1.5) | (np.abs(rows - lower_fit[None, :]) <= 1.5)
    muscle = (rows > upper_fit[None, :] + 4) & (rows < lower_fit[None, :] - 4)
    return apo, muscle


def orientation_spectrum(image_HxW: np.ndarray, region_HxW: np.ndarray, sigma_px: float) -> np.ndarray:
    """Energy of oriented structure per orientation bin (0–180° from horizontal), summing to 1.

    Structure orientation is perpendicular to the local gradient; each pixel adds its
    gradient energy to the bin of its structure's orientation.
    """
    smooth = ndimage.gaussian_filter(image_HxW.astype(float), sigma_px)
    gy, gx = ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1)
    # Rows grow downwards: flip gy so that angles are the usual counter-clockwise ones.
    structure_deg = np.mod(np.degrees(np.arctan2(-gy, gx)) + 90.0, 180.0)
    energy = np.where(region_HxW, gx**2 + gy**2, 0.0)
    spectrum, _ = np.histogram(structure_deg, bins=ORIENTATION_BINS, range=(0, 180), weights=energy)
    return spectrum / max(spectrum.sum(), 1e-12)


def image_statistics(image_HxW: np.ndarray, apo_HxW: np.ndarray, muscle_HxW: np.ndarray, sigma_px: float) -> dict:
    muscle = image_HxW[muscle_HxW].astype(float)
    apo = image_HxW[apo_HxW].astype(float)
    spectrum = orientation_spectrum(image_HxW, muscle_HxW, sigma_px)
    centres = (np.arange(ORIENTATION_BINS) + 0.5) * 180.0 / ORIENTATION_BINS
    # Fascicles descend to the right in all sources: 10–60° below horizontal is 120–170° here.
    # Near-horizontal energy (aponeurosis remnants, laterally elongated speckle) dominates the
    # spectrum's maximum, so the fascicles are summarised by the energy-weighted mean in that band.
    band = (centres > 120.0) & (centres < 170.0)
    fascicle_deg = float(np.sum(spectrum[band] * (180.0 - centres[band])) / max(spectrum[band].sum(), 1e-12))
    return {
        "muscle_mean": muscle.mean(),
        "muscle_snr": muscle.mean() / max(muscle.std(), 1e-9),
        "aponeurosis_contrast": apo.mean() / max(muscle.mean(), 1e-9),
        "orientation_peak_deg": fascicle_deg,
        "orientation_concentration": float(spectrum[band].sum()),
        "spectrum": spectrum,
        "muscle_values": muscle / max(muscle.mean(), 1e-9),
    }


def phantom_frames(config: phantom.PhantomConfig, participants: int, per_participant: int):
    """Frames and masks from the first combined trial of the first `participants` participants."""
    frames, masks = [], []
    short = dataclasses.replace(
        config, num_participants=max(participants, 1), passive_duration_s=0.0, isometric_duration_s=0.0,
        num_combined_trials=1, combined_duration_s=4.0, workers=1,
    )
    for index in range(participants):
        (trial,) = phantom.simulate_participant(short, index)
        picks = np.linspace(0, len(trial["frame"]) - 1, per_participant).round().astype(int)
        frames += [trial["frame_image"][k, ..., 0] for k in picks]
        masks += [trial["mask"][k, ..., 0] for k in picks]
    return frames, masks


def summarise(rows: list[dict]) -> dict:
    keys = ("muscle_mean", "muscle_snr", "aponeurosis_contrast", "orientation_peak_deg", "orientation_concentration")
    return {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows]))) for k in keys} | {
        "n": len(rows),
        "spectrum": np.mean([r["spectrum"] for r in rows], axis=0),
        "muscle_values": np.concatenate([r["muscle_values"] for r in rows]),
    }


def markdown_table(summaries: dict[str, dict]) -> str:
    header = (
        "| source | frames | muscle mean grey | muscle SNR (mean/std) | aponeurosis / muscle grey |"
        " fascicle orientation: mean over 10–60° below horizontal (°) | share of oriented energy in that band |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    lines = []
    for name, s in summaries.items():
        cells = [f"{s[k][0]:.2f} ± {s[k][1]:.2f}" for k in (
            "muscle_mean", "muscle_snr", "aponeurosis_contrast", "orientation_peak_deg", "orientation_concentration")]
        lines.append(f"| {name} | {s['n']} | " + " | ".join(cells) + " |")
    return header + "\n".join(lines) + "\n"


def write_table(doc: Path, table: str) -> None:
    text = doc.read_text() if doc.exists() else ""
    block = f"{TABLE_BEGIN}\n{table}{TABLE_END}"
    if TABLE_BEGIN in text and TABLE_END in text:
        text = re.sub(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), lambda _: block, text, flags=re.S)
    else:
        text += f"\n{block}\n"
    doc.write_text(text)


def define_flags() -> None:
    flags.DEFINE_integer("participants", 4, "Phantom participants to render.")
    flags.DEFINE_integer("dl_track", 60, "DL_Track pairs to analyse.")
    flags.DEFINE_string("figure", str(REPO / "docs" / "figures" / "phantom_vs_real.png"), "Figure to write.")
    flags.DEFINE_string("doc", str(REPO / "docs" / "phantom.md"), "Doc whose statistics table is rewritten.")


def main(argv: list[str]) -> None:
    args = flags.FLAGS
    figure_path, doc_path = Path(args.figure), Path(args.doc)

    config = phantom.phantom_small()
    s = config.mm_per_px
    sim_frames, sim_masks = phantom_frames(config, args.participants, per_participant=3)
    sim_stats = [
        image_statistics(f, (m == imaging.SUPERFICIAL) | (m == imaging.DEEP), m == imaging.MUSCLE, sigma_px=1.0)
        for f, m in zip(sim_frames, sim_masks)
    ]
    real_frames = [f for clip in GASFASTRACK_CLIPS for f in gasfastrack_frames(clip, 4, s)]
    real_stats = [image_statistics(f, *regions_from_brightest_ridges(f), sigma_px=1.0) for f in real_frames]
    dl_stats, dl_examples = [], []
    for image, apo in dl_track_pairs(args.dl_track):
        regions = regions_from_aponeurosis_mask(apo)
        if regions is not None and regions[1].sum() > 500:
            dl_stats.append(image_statistics(image, *regions, sigma_px=3.0))
            dl_examples.append(image)
    summaries = {
        f"phantom_small (0.4 mm/px, {args.participants} participants)": summarise(sim_stats),
        "GasFasTrack p6 (resampled to 0.4 mm/px)": summarise(real_stats),
        "DL_Track (native scale, mixed muscles)": summarise(dl_stats),
    }
    table = markdown_table(summaries)
    print(table)
    write_table(doc_path, table)

    figure, axes = plt.subplots(3, 4, figsize=(16, 12))
    for ax, frame, title in zip(axes[0], sim_frames[::3][:3] + [real_frames[0]], [
        f"phantom participant {k}" for k in range(3)] + ["GasFasTrack p6, passive ROM"]):
        ax.imshow(frame, cmap="gray", vmin=0, vmax=255, extent=(0, frame.shape[1] * s, frame.shape[0] * s, 0))
        ax.set_title(title)
        ax.set_xlabel("mm")
    for ax, frame, title in zip(axes[1], [sim_frames[1], sim_frames[2], real_frames[5], real_frames[9]], [
        "phantom, later in the trial", "phantom, later still", "GasFasTrack, isometric max", "GasFasTrack, isokinetic 30°/s"]):
        ax.imshow(frame, cmap="gray", vmin=0, vmax=255, extent=(0, frame.shape[1] * s, frame.shape[0] * s, 0))
        ax.set_title(title)
        ax.set_xlabel("mm")
    bins = np.linspace(0, 4, 41)
    for name, summary in summaries.items():
        axes[2, 0].hist(summary["muscle_values"], bins=bins, density=True, histtype="step", label=name.split(" (")[0])
        centres = (np.arange(ORIENTATION_BINS) + 0.5) * 180 / ORIENTATION_BINS
        axes[2, 1].plot(centres, summary["spectrum"], label=name.split(" (")[0])
    axes[2, 0].set_title("muscle grey level / its mean")
    axes[2, 0].legend(fontsize=8)
    axes[2, 1].set_title("orientation spectrum in the muscle (° from horizontal)")
    axes[2, 1].legend(fontsize=8)
    axes[2, 2].imshow(dl_examples[0], cmap="gray")
    axes[2, 2].set_title("DL_Track example (own scale)")
    axes[2, 3].imshow(dl_examples[len(dl_examples) // 2], cmap="gray")
    axes[2, 3].set_title("DL_Track example (own scale)")
    figure.tight_layout()
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(figure_path, dpi=80)
    print(f"wrote {figure_path} and the table in {doc_path}")


if __name__ == "__main__":
    cli.run(main, define_flags)
