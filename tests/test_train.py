"""Properties of the training job: no leakage from a held-out participant, exact resume,
a clear stop on a non-finite loss, and the fold ensemble of a finished run."""

from __future__ import annotations

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from muscle_jax import ensemble, train
from muscle_jax.data import pipeline


class PerturbedSource:
    """The wrapped source with one participant's images inverted and labels shifted."""

    def __init__(self, source, participant: int, targets):
        self._source, self._participant, self._targets = source, participant, targets

    def __len__(self):
        return len(self._source)

    def _perturb(self, record):
        if record["participant"] != self._participant:
            return record
        record = dict(record)
        record["image"] = 255 - record["image"]
        for name in self._targets:
            record[name] = np.float32(record[name] * 3 + 100)
        return record

    def __getitem__(self, i):
        return self._perturb(self._source[i])

    def __getitems__(self, indices):
        return [self._perturb(r) for r in self._source.__getitems__(indices)]


class CrashingSource:
    """The wrapped source, raising (like a killed process) on the n-th training-batch read."""

    def __init__(self, source, crash_on_batch: int, batch_records: int):
        self._source, self._crash_on, self._batch_records, self.batch_reads = source, crash_on_batch, batch_records, 0

    def __len__(self):
        return len(self._source)

    def __getitem__(self, i):
        return self._source[i]

    def __getitems__(self, indices):
        indices = list(indices)
        if len(indices) == self._batch_records:
            self.batch_reads += 1
            if self.batch_reads == self._crash_on:
                raise RuntimeError("simulated crash")
        return self._source.__getitems__(indices)


def _final_params(workdir):
    return ensemble.load(workdir).params


def test_held_out_participant_cannot_reach_its_fold(smoke_dataset, smoke_run, tmp_path):
    config = smoke_dataset.config()
    perturbed = PerturbedSource(smoke_dataset.source, participant=0, targets=config.dataset.targets)
    train.train_and_evaluate_on(config, tmp_path, perturbed, smoke_dataset.info)
    clean, changed = _final_params(smoke_run), _final_params(tmp_path)
    fold_of_participant_0 = 0
    for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(changed)):
        np.testing.assert_array_equal(np.asarray(a[fold_of_participant_0]), np.asarray(b[fold_of_participant_0]))
    # The perturbation does reach the folds that train on participant 0, so the test can fail.
    others_differ = [not np.array_equal(np.asarray(a[1:]), np.asarray(b[1:]))
                     for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(changed))]
    assert all(others_differ)


def test_interrupted_run_resumes_to_the_same_parameters(smoke_dataset, smoke_run, tmp_path):
    config, source, info = smoke_dataset.config(), smoke_dataset.source, smoke_dataset.info
    num_folds = len(np.unique([source[i]["participant"] for i in range(len(source))]))
    crashing = CrashingSource(source, crash_on_batch=6, batch_records=num_folds * config.train.batch_size)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train.train_and_evaluate_on(config, tmp_path, crashing, info)
    interrupted = ensemble.load(tmp_path)
    assert 0 < interrupted.step < config.train.num_steps
    train.train_and_evaluate_on(config, tmp_path, source, info)
    resumed, straight = _final_params(tmp_path), _final_params(smoke_run)
    assert ensemble.load(tmp_path).step == config.train.num_steps
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_non_finite_loss_stops_training_with_a_clear_message(smoke_dataset, tmp_path):
    config = smoke_dataset.config()
    config.train.learning_rate = 1e9  # diverges within a few steps
    with pytest.raises(FloatingPointError, match=r"fold \d+ has a non-finite (loss|gradient norm)"):
        train.train_and_evaluate_on(config, tmp_path, smoke_dataset.source, smoke_dataset.info)


def test_ensemble_predicts_mean_and_spread_in_physical_units(smoke_dataset, smoke_run):
    config = smoke_dataset.config()
    models = ensemble.load(smoke_run)
    images = np.stack([smoke_dataset.source[i]["image"] for i in range(5)])
    mean_NxT, std_NxT = models.predict(images, batch_size=4)
    assert mean_NxT.shape == std_NxT.shape == (5, len(config.dataset.targets))
    assert np.all(std_NxT > 0)  # independently initialised and trained folds disagree a little
    torque = models.targets.index("torque_nm")
    assert np.all(np.abs(mean_NxT[:, torque]) < 500)  # physical scale, not standardised units
    with pytest.raises(ValueError, match="trained on ROI images of shape"):
        models.predict(images[:, :16])


def test_tensorflow_is_never_imported(smoke_run):
    import sys

    # smoke_run built the dataset, trained, evaluated and reported in this process.
    assert not any(name == "tensorflow" or name.startswith("tensorflow.") for name in sys.modules)


def test_a_run_on_frame_stacks_trains_evaluates_and_predicts_from_context(smoke_dataset, tmp_path):
    config = smoke_dataset.config()
    config.dataset.frame_stack = 3
    results = train.train_and_evaluate_on(config, tmp_path, smoke_dataset.source, smoke_dataset.info)
    assert np.isfinite(results["models"]["cnn"]["angle_deg"]["rmse"]["mean"])
    models = ensemble.load(tmp_path)
    assert models.image_shape == (32, 32, 3)
    frames_NxHxWx1 = pipeline.read_images(smoke_dataset.source, np.arange(6))
    inputs = pipeline.stack_sequence(frames_NxHxWx1, 3)
    mean_NxT, _ = models.predict(inputs)
    assert mean_NxT.shape == (6, 3)
    earlier_changed = inputs.copy()
    earlier_changed[..., 0] = 255 - earlier_changed[..., 0]
    assert not np.allclose(models.predict(earlier_changed)[0], mean_NxT)  # the earlier frames are seen
    with pytest.raises(ValueError, match="trained on ROI images of shape"):
        models.predict(frames_NxHxWx1)
