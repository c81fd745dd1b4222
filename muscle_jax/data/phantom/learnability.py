"""A cheap check that the phantom's ROI carries the states in a way that transfers between people.

Ridge regression from a handful of hand-made, gain-insensitive ROI features to angle, torque
and EMG, trained on all participants but one and scored (R²) on the one left out:

    python -m muscle_jax.data.phantom.learnability              # phantom_small, ~1 min on 2 cores
    python -m muscle_jax.data.phantom.learnability --cnn-folds 3,5,7   # + a small CNN, ~3 min a fold

Features, per ROI: the dominant orientation and its coherence in four horizontal bands (the
slope of the fascicles, which follows their projection, and how it changes with depth, which
follows their bow), the local coherence and the spread of local orientation (crimp), and the
brightness of the interior relative to the whole ROI; each with its square. A CNN should do
better; if this check is near zero, the images do not carry transferable cues.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from scipy import ndimage

from muscle_jax.data.phantom.config import phantom_small
from muscle_jax.data.phantom.simulate import simulate_participants

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


def augment(images_BxHxWx1: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast jitter and a horizontal shift: what differs between participants and
    probe placements but says nothing about the state (a horizontal flip would: it mirrors the
    fascicles' direction)."""
    batch = images_BxHxWx1.shape[0]
    gain = rng.uniform(0.7, 1.3, (batch, 1, 1, 1))
    offset = rng.uniform(-0.08, 0.08, (batch, 1, 1, 1))
    shifted = np.roll(images_BxHxWx1, int(rng.integers(-12, 13)), axis=2)
    return (shifted * gain + offset).astype(np.float32)


def small_cnn_r2(
    images_NxHxW: np.ndarray,
    targets_NxT: np.ndarray,
    participants_N: np.ndarray,
    held_out: int,
    steps: int,
    augmented: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Held-out R² per target of a small CNN (4 conv blocks, Adam, batch 32) trained for `steps`
    on every participant but `held_out`, labels standardised on the training participants."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    class SmallCnn(nn.Module):
        @nn.compact
        def __call__(self, x_BxHxWx1):
            x = x_BxHxWx1
            for features in (16, 32, 64, 64):
                x = nn.relu(nn.Conv(features, (3, 3))(x))
                x = nn.relu(nn.Conv(features, (3, 3))(x))
                x = nn.max_pool(x, (2, 2), (2, 2))
            x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
            return nn.Dense(targets_NxT.shape[1])(x)

    images = images_NxHxW[..., None].astype(np.float32) / 255.0
    train = participants_N != held_out
    mean, std = targets_NxT[train].mean(0), targets_NxT[train].std(0)
    standardised = ((targets_NxT - mean) / std).astype(np.float32)
    model = SmallCnn()
    params = model.init(jax.random.PRNGKey(seed), images[:1])
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((model.apply(p, x) - y) ** 2))(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    train_indices = np.nonzero(train)[0]
    for _ in range(steps):
        batch = rng.choice(train_indices, 32)
        inputs = augment(images[batch], rng) if augmented else images[batch]
        params, opt_state, _ = step(params, opt_state, inputs, standardised[batch])
    test = ~train
    apply = jax.jit(model.apply)
    predictions = np.concatenate(
        [np.asarray(apply(params, images[test][i : i + 256])) for i in range(0, int(test.sum()), 256)]
    ) * std + mean
    return 1.0 - ((predictions - targets_NxT[test]) ** 2).mean(0) / targets_NxT[test].var(0)


def main() -> None:
    parser = argparse.ArgumentParser(description="Ridge learnability check of the phantom ROI.")
    parser.add_argument("--seed", type=int, default=None, help="phantom seed (default: the preset's)")
    parser.add_argument("--cnn-folds", type=str, default="", help="also train a small CNN holding out these, e.g. 3,5,7")
    parser.add_argument("--cnn-steps", type=int, default=400)
    parser.add_argument("--no-augment", action="store_true", help="train the CNN without augmentation")
    args = parser.parse_args()
    config = phantom_small()
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
        what = "without augmentation" if args.no_augment else "brightness/contrast jitter and horizontal shifts"
        print(f"\nSmall CNN, {args.cnn_steps} steps of batch 32, {what}\n\n| held-out participant | "
              + " | ".join(TARGETS) + " |\n| --- |" + " --- |" * len(TARGETS))
        for held_out in (int(f) for f in args.cnn_folds.split(",")):
            r2 = small_cnn_r2(images, targets, participants, held_out, args.cnn_steps, augmented=not args.no_augment)
            print(f"| {held_out} | " + " | ".join(f"{v:.2f}" for v in r2) + " |")


if __name__ == "__main__":
    main()
