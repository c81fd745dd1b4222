"""Training of the aponeurosis U-Net on DL_Track pairs; writes the single-file checkpoint.

    python -m muscle_jax.segmentation.train --config=configs/segmentation.py \
        --output=muscle_jax/segmentation/pretrained/unet_aponeurosis.msgpack

Loss: per-pixel binary cross-entropy plus (1 − soft Dice) per image — the masks are thin
bands covering ~3 % of a frame, and the Dice term keeps the network from settling on
"all background". Augmentation runs inside the jitted step (`augment.py`). After training,
Dice and IoU on the held-out images are measured at each image's own resolution and stored
in the checkpoint's metadata.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import flags, logging
from flax.training import train_state
from ml_collections import config_flags

from muscle_jax import cli, optimizer
from muscle_jax.segmentation import dl_track, evaluate
from muscle_jax.segmentation.augment import augment_batch
from muscle_jax.segmentation.network import build_unet, load_checkpoint, save_checkpoint
from muscle_jax.segmentation.phantom_frames import phantom_training_frames


def loss_and_metrics(logits_BxHxW: jax.Array, masks_BxHxW: jax.Array, dice_weight: float) -> tuple[jax.Array, dict]:
    """BCE + dice_weight · (1 − soft Dice), Dice per image then averaged."""
    bce = optax.sigmoid_binary_cross_entropy(logits_BxHxW, masks_BxHxW).mean()
    probabilities = jax.nn.sigmoid(logits_BxHxW)
    intersection_B = jnp.sum(probabilities * masks_BxHxW, axis=(1, 2))
    total_B = jnp.sum(probabilities, axis=(1, 2)) + jnp.sum(masks_BxHxW, axis=(1, 2))
    soft_dice = jnp.mean((2.0 * intersection_B + 1.0) / (total_B + 1.0))
    loss = bce + dice_weight * (1.0 - soft_dice)
    return loss, {"loss": loss, "bce": bce, "soft_dice": soft_dice}


def create_state(config: ml_collections.ConfigDict, key: jax.Array) -> train_state.TrainState:
    model = build_unet(config.model.to_dict())
    params = model.init(key, jnp.zeros((1, *config.input_hw, 1), jnp.float32))
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optimizer.make_optimizer(config.train))


def make_train_step(config: ml_collections.ConfigDict):
    """A jitted (state, key, frames_NxHxW uint8, masks_NxHxW, indices_B) → (state, metrics)."""
    augment_config = config.augment
    dice_weight = config.train.dice_weight

    def step(state, key, frames_NxHxW, masks_NxHxW, indices_B):
        images = frames_NxHxW[indices_B].astype(jnp.float32) / 255.0
        images, masks = augment_batch(key, images, masks_NxHxW[indices_B], augment_config)

        def loss_fn(params):
            logits = state.apply_fn(params, images[..., None])[..., 0]
            return loss_and_metrics(logits, masks, dice_weight)

        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), metrics

    return jax.jit(step, donate_argnums=0)


def train(
    config: ml_collections.ConfigDict, frames_NxHxW: np.ndarray, masks_NxHxW: np.ndarray
) -> tuple[Any, list[dict]]:
    """Trains from scratch on working-resolution data; returns (params, logged metrics)."""
    key = jax.random.key(config.seed)
    key, init_key = jax.random.split(key)
    state = create_state(config, init_key)
    if config.train.init_checkpoint:  # a second stage continues from the first stage's weights
        init_model, params, input_hw, meta = load_checkpoint(config.train.init_checkpoint)
        if tuple(input_hw) != tuple(config.input_hw) or init_model != build_unet(config.model.to_dict()):
            raise ValueError(f"{config.train.init_checkpoint}: model {meta['model']} at {input_hw} differs from "
                             f"the config's {config.model.to_dict()} at {tuple(config.input_hw)}")
        state = state.replace(params=jax.tree.map(jnp.asarray, params), opt_state=state.tx.init(params))
    step_fn = make_train_step(config)
    frames, masks = jnp.asarray(frames_NxHxW), jnp.asarray(masks_NxHxW)
    rng = np.random.default_rng(config.seed)
    count, batch_size = len(frames_NxHxW), config.train.batch_size
    order, position, history = rng.permutation(count), 0, []
    start = time.time()
    for step in range(1, config.train.num_steps + 1):
        if position + batch_size > count:
            order, position = rng.permutation(count), 0
        indices = order[position : position + batch_size] if batch_size <= count else rng.integers(0, count, batch_size)
        position += batch_size
        key, step_key = jax.random.split(key)
        state, metrics = step_fn(state, step_key, frames, masks, jnp.asarray(indices))
        if step % config.train.log_every == 0 or step == config.train.num_steps:
            metrics = {k: float(v) for k, v in metrics.items()}
            optimizer.check_finite_loss(np.asarray(metrics["loss"]), step, ("the U-Net",))
            metrics.update(step=step, seconds=round(time.time() - start, 1))
            history.append(metrics)
            logging.info("step %d %s", step, json.dumps(metrics))
    return state.params, history


def train_and_evaluate(config: ml_collections.ConfigDict, output: str | Path) -> dict:
    """Loads the split, trains, measures validation Dice/IoU, writes the checkpoint; returns its metrics."""
    pairs = dl_track.list_pairs(config.data.dl_track_dir)
    train_pairs, validation_pairs = dl_track.split_pairs(pairs, config.data.validation_fraction, config.data.split_seed)
    if config.data.max_images:
        train_pairs, validation_pairs = train_pairs[: config.data.max_images], validation_pairs[: config.data.max_images]
    input_hw = tuple(config.input_hw)
    frames, masks = dl_track.load_at_working_resolution(train_pairs, input_hw)
    if config.data.phantom_frames:  # training only: validation stays on the held-out real images
        phantom_frames, phantom_masks = phantom_training_frames(config.data.phantom_frames, input_hw, config.data.phantom_preset)
        frames, masks = np.concatenate([frames, phantom_frames]), np.concatenate([masks, phantom_masks])
        logging.info("added %d phantom frames to %d real training images", len(phantom_frames), len(train_pairs))
    start = time.time()
    params, history = train(config, frames, masks)
    train_seconds = time.time() - start
    model = build_unet(config.model.to_dict())
    validation = evaluate.mask_metrics(
        model, params, input_hw, validation_pairs, config.eval.batch_size, config.eval.threshold
    )
    metrics = {
        "validation": validation,
        "num_train_images": len(train_pairs),
        "num_phantom_frames": int(config.data.phantom_frames),
        "validation_names": [p.name for p in validation_pairs],
        "train_seconds": round(train_seconds, 1),
        "final_train": history[-1] if history else {},
        "config": json.loads(config.to_json()),
    }
    save_checkpoint(output, params, config.model.to_dict(), input_hw, metrics)
    logging.info("validation %s; checkpoint %s", json.dumps(validation), output)
    return metrics


def define_flags() -> None:
    config_flags.DEFINE_config_file("config", None, "configs/segmentation.py[:smoke]", lock_config=True)
    flags.DEFINE_string("output", None, "where to write the checkpoint (.msgpack)", required=True)
    flags.mark_flag_as_required("config")


def main(argv: list[str]) -> None:
    metrics = train_and_evaluate(flags.FLAGS.config, flags.FLAGS.output)
    print(json.dumps({k: metrics[k] for k in ("validation", "train_seconds", "num_train_images")}, indent=1))


if __name__ == "__main__":
    cli.run(main, define_flags)
