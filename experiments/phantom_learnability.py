"""A cheap check that the phantom's ROI carries the states in a way that transfers between people.

Ridge regression from a handful of hand-made, gain-insensitive ROI features to angle, torque
and EMG, trained on all participants but one and scored (R²) on the one left out:

    python experiments/phantom_learnability.py                    # phantom_small, ~1 min on 2 cores
    python experiments/phantom_learnability.py --cnn_folds=3,5,7  # + the project's CNN, ~30 s a fold

Features, per ROI: the dominant orientation and its coherence in four horizontal bands (the
slope of the fascicles, which follows their projection, and how it changes with depth, which
follows their bow), the local coherence and the spread of local orientation (crimp), and the
brightness of the interior relative to the whole ROI; each with its square. A CNN should do
better; if this check is near zero, the images do not carry transferable cues. The CNN is
the project's own (configs/default.py's model, augmentation, optimiser and train step),
trained as one fold for `--cnn_steps`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from scipy import ndimage  # noqa: E402

from configs import default  # noqa: E402
from muscle_jax import cli, evaluate, optimizer, runtime, train  # noqa: E402
from muscle_jax.data.phantom import PRESETS, simulate_participants  # noqa: E402
from muscle_jax.models import create_model  # noqa: E402

TARGETS = ("angle_deg", "torque_nm", "emg_v")
RIDGE_PENALTY = 10.0


def roi_features(images_NxHxW: np.ndarray) -> np.ndarray:
    """Orientation, coherence and brightness features of ROI images ([N, F], float64)."""
    images = images_NxHxW.astype(np.float32)
    smooth = ndimage.gaussian_filter(images, (0, 1, 1))
    gy, gx = ndimage.sobel(smooth, 1), ndimage.sobel(smooth, 2)
    features = []
    for band in np.array_split(np.arange(2, images.shape[1] - 2), 4):
        jxx = (gx[:, band] ** 2).mean((1, 2))
        jyy = (gy[:, band] ** 2).mean((1, 2))
        jxy = (gx[:, band] * gy[:, band]).mean((1, 2))
        features += [0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy)), np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy)]
    local_xx = ndimage.gaussian_filter(gx * gx, (0, 3, 3))
    local_yy = ndimage.gaussian_filter(gy * gy, (0, 3, 3))
    local_xy = ndimage.gaussian_filter(gx * gy, (0, 3, 3))
    inner = (slice(None), slice(4, -4), slice(4, -4))
    coherence = np.hypot(local_xx - local_yy, 2 * local_xy) / (local_xx + local_yy + 1e-6)
    orientation = 0.5 * np.arctan2(2 * local_xy, local_xx - local_yy)
    features += [coherence[inner].mean((1, 2)), np.degrees(orientation[inner].std((1, 2)))]
    features.append(images[:, 6:-6].mean((1, 2)) / (images.mean((1, 2)) + 1.0))
    x = np.stack(features, 1).astype(np.float64)
    return np.concatenate([x, x**2 / (np.abs(x).mean(0) + 1e-6)], 1)


def leave_one_participant_out_r2(features_NxF: np.ndarray, targets_N: np.ndarray, participants_N: np.ndarray) -> np.ndarray:
    """Held-out R² of ridge regression for each participant left out (standardised on the rest)."""
    scores = []
    for held_out in np.unique(participants_N):
        train, test = participants_N != held_out, participants_N == held_out
        mean, std = features_NxF[train].mean(0), features_NxF[train].std(0) + 1e-9
        x_train, x_test = (features_NxF[train] - mean) / std, (features_NxF[test] - mean) / std
        y_mean, y_std = targets_N[train].mean(), targets_N[train].std()
        gram = x_train.T @ x_train + RIDGE_PENALTY * np.eye(x_train.shape[1])
        weights = np.linalg.solve(gram, x_train.T @ ((targets_N[train] - y_mean) / y_std))
        prediction = x_test @ weights * y_std + y_mean
        scores.append(1.0 - np.mean((prediction - targets_N[test]) ** 2) / np.var(targets_N[test]))
    return np.asarray(scores)


def cnn_r2(images_NxHxW: np.ndarray, targets_NxT: np.ndarray, participants_N: np.ndarray, held_out: int,
           steps: int, augmented: bool = True) -> np.ndarray:
    """Held-out R² per target of configs/default.py's CNN trained for `steps` with its
    augmentation, optimiser and train step, on every participant but `held_out` (labels
    standardised on the training participants), as one fold."""
    config = default.get_config()
    config.train.num_steps = steps
    config.augment.enabled = augmented
    rt = runtime.resolve(config.runtime)
    model = create_model(config.model, targets_NxT.shape[1], rt.conv_module, rt.dtype)
    images_NxHxWx1 = images_NxHxW[..., None]
    train_N = participants_N != held_out
    mean_T, std_T = targets_NxT[train_N].mean(0), targets_NxT[train_N].std(0)
    state = jax.tree.map(lambda a: a[0], train.create_fold_state(
        model, optimizer.make_optimizer(config.train), config.seed, 1, images_NxHxWx1.shape[1:]))
    step = rt.jit(lambda s, x, y: train.train_step(s, x, y, 0, config.seed, config.augment), donate_argnums=0)
    rng = np.random.default_rng(config.seed)
    train_indices = np.flatnonzero(train_N)
    for _ in range(steps):
        batch = rng.choice(train_indices, config.train.batch_size)
        state, _ = step(state, images_NxHxWx1[batch], ((targets_NxT[batch] - mean_T) / std_T).astype(np.float32))
    predict = rt.jit(lambda p, x: evaluate.predict_physical(model.apply, p, x, jnp.asarray(mean_T), jnp.asarray(std_T)))
    test_indices = np.flatnonzero(~train_N)
    predictions = np.concatenate([np.asarray(predict(state.params, images_NxHxWx1[test_indices[i : i + 256]]))
                                  for i in range(0, len(test_indices), 256)])
    return 1.0 - ((predictions - targets_NxT[test_indices]) ** 2).mean(0) / targets_NxT[test_indices].var(0)


def define_flags() -> None:
    flags.DEFINE_integer("seed", None, "Phantom seed (default: the preset's).")
    flags.DEFINE_list("cnn_folds", [], "Also train the project's CNN holding out these participants, e.g. 3,5,7.")
    flags.DEFINE_integer("cnn_steps", 400, "Steps of the CNN per held-out participant.")
    flags.DEFINE_boolean("augment", True, "Train the CNN with the project's augmentation.")


def main(argv: list[str]) -> None:
    args = flags.FLAGS
    config = PRESETS["phantom_small"]()
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    images, labels, participants = [], {t: [] for t in TARGETS}, []
    for index, trials in simulate_participants(config):
        for trial in trials:
            images.append(trial["image"][..., 0])
            participants.append(np.full(len(trial["frame"]), index))
            for target in TARGETS:
                labels[target].append(trial[target])
    images = np.concatenate(images)
    features = roi_features(images)
    participants = np.concatenate(participants)
    targets = np.stack([np.concatenate(labels[t]).astype(np.float64) for t in TARGETS], 1)
    print("Ridge on ROI features\n\n| target | mean held-out R² | median | per held-out participant |\n| --- | --- | --- | --- |")
    for k, target in enumerate(TARGETS):
        r2 = leave_one_participant_out_r2(features, targets[:, k], participants)
        print(f"| {target} | {r2.mean():.2f} | {np.median(r2):.2f} | {' '.join(f'{v:.2f}' for v in r2)} |")
    if args.cnn_folds:
        what = "with the project's augmentation" if args.augment else "without augmentation"
        print(f"\nThe project's CNN, {args.cnn_steps} steps, {what}\n\n| held-out participant | "
              + " | ".join(TARGETS) + " |\n| --- |" + " --- |" * len(TARGETS))
        for held_out in (int(f) for f in args.cnn_folds):
            r2 = cnn_r2(images, targets, participants, held_out, args.cnn_steps, augmented=args.augment)
            print(f"| {held_out} | " + " | ".join(f"{v:.2f}" for v in r2) + " |")


if __name__ == "__main__":
    cli.run(main, define_flags)
