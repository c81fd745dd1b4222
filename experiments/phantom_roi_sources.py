"""Oracle vs segmentation ROIs on phantom frames: a figure and how far apart they are.

    python experiments/phantom_roi_sources.py [--figure=docs/figures/phantom_roi_sources.png]

For a few frames of phantom_small's participants: the rendered frame with the true
aponeurosis curves and those the shipped U-Net fits, the oracle ROI (between the true
curves, over the phantom's fixed column range) and the segmentation ROI (between the fitted
curves, over the columns both fitted aponeuroses cover). Prints, over the frames, the mean
absolute ROI difference, the fitted vs true column range and thickness.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from muscle_jax import cli  # noqa: E402
from muscle_jax.data import phantom  # noqa: E402
from muscle_jax.data.phantom.simulate import simulate_trial  # noqa: E402
from muscle_jax.segmentation import segment_frames  # noqa: E402

_PARTICIPANTS = (0, 2, 4, 6)


def define_flags() -> None:
    flags.DEFINE_string("figure", "docs/figures/phantom_roi_sources.png", "figure path")


def main(argv) -> None:
    config = phantom.phantom_small()
    fig, axes = plt.subplots(3, len(_PARTICIPANTS), figsize=(3.2 * len(_PARTICIPANTS), 9))
    differences, starts, ends, thickness_errors = [], [], [], []
    for column, participant in enumerate(_PARTICIPANTS):
        trial = simulate_trial(config, participant, 2)  # a combined (active + passive) trial
        frames = trial["frame_image"][::50, ..., 0]
        result = segment_frames(np.ascontiguousarray(frames), config.roi_hw)
        oracle = trial["image"][::50, ..., 0]
        found = result.found_N
        differences.append(np.abs(oracle[found].astype(float) - result.rois_NxhxW[found].astype(float)).mean())
        starts.extend(result.column_range_Nx2[found, 0])
        ends.extend(result.column_range_Nx2[found, 1])
        columns = np.arange(frames.shape[2], dtype=np.float64)
        true_thickness = np.array([np.mean(np.polyval(d, columns) - np.polyval(s, columns))
                                   for s, d in zip(trial["superficial_coeffs"][::50], trial["deep_coeffs"][::50])])
        thickness_errors.extend(result.thickness_px_N[found] - true_thickness[found])
        k = 0
        ax = axes[0, column]
        ax.imshow(frames[k], cmap="gray", vmin=0, vmax=255)
        for coeffs, colour in ((trial["superficial_coeffs"][0], "lime"), (trial["deep_coeffs"][0], "lime"),
                               (result.superficial_coeffs_NxD[k], "magenta"), (result.deep_coeffs_NxD[k], "magenta")):
            ax.plot(columns, np.polyval(coeffs, columns), color=colour, lw=0.8)
        ax.set_title(f"participant {participant}: true (green), fitted (magenta)", fontsize=8)
        axes[1, column].imshow(oracle[k], cmap="gray", vmin=0, vmax=255)
        axes[1, column].set_title("oracle ROI", fontsize=8)
        axes[2, column].imshow(result.rois_NxhxW[k], cmap="gray", vmin=0, vmax=255)
        axes[2, column].set_title(f"segmentation ROI (found {int(found.sum())}/{len(found)})", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(flags.FLAGS.figure, dpi=100)
    lo, hi = config.roi_column_range
    print(f"mean |oracle ROI − segmentation ROI| per participant: {np.round(differences, 1).tolist()} grey levels")
    print(f"column range: oracle {lo:.1f}–{hi:.1f} px; fitted median {np.median(starts):.1f}–{np.median(ends):.1f} px "
          f"(sd {np.std(starts):.1f}, {np.std(ends):.1f})")
    print(f"thickness, fitted − true: median {np.median(thickness_errors):+.2f} px, "
          f"median |error| {np.median(np.abs(thickness_errors)):.2f} px")
    print(f"wrote {flags.FLAGS.figure}")


if __name__ == "__main__":
    cli.run(main, define_flags)
