"""Never a silently wrong result: every bad input or fault tried, and the outcome it gets.

Each test is one row of docs/reliability.md (`@case(fault, outcome)`); the doc is written
from a run of this module (`MUSCLE_JAX_RELIABILITY_DOC=docs/reliability.md python -m pytest
tests/test_reliability.py`, see conftest.py) and `test_the_doc_lists_every_case` keeps the
two the same.
"""

from __future__ import annotations

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from configs import smoke  # noqa: E402
from muscle_jax import checkpoint, ensemble, runtime, train, validation  # noqa: E402
from muscle_jax import workdir as workdir_lib  # noqa: E402
from muscle_jax.data import identity, pipeline, recordings  # noqa: E402
from muscle_jax.data.readers import images as image_files  # noqa: E402
from muscle_jax.data.readers.video import read_video  # noqa: E402
from muscle_jax.segment import segment_input  # noqa: E402
from test_recordings import make_layout, signal_table, write_csv  # noqa: E402
from test_readers import synthetic_frames, truncate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reliability.md"
CASES: list[tuple[str, str, str, str]] = []  # (test name, area, fault, outcome)


def case(area: str, fault: str, outcome: str):
    """Registers a test as a row of docs/reliability.md."""

    def register(test):
        CASES.append((test.__name__, area, fault, outcome))
        return test

    return register


def _run_cli(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stderr.strip().splitlines()[-1]


def _recordings_config(layout: Path, data_dir: Path):
    config = smoke.get_config()
    config.dataset.builder_config = "recordings"
    config.dataset.manual_dir = str(layout)
    config.dataset.data_dir = str(data_dir)
    config.dataset.targets = ("angle_deg", "torque_nm")
    return config


# ---------------------------------------------------------------- stale data


@case("stale data", "a recording's signals corrected after the dataset was built",
      "rebuilt under a new name; the log names the changed file")
def test_a_changed_recording_rebuilds_its_dataset(tmp_path, caplog):
    layout = make_layout(tmp_path / "layout")
    config = _recordings_config(layout, tmp_path / "tfds")
    first, first_info = pipeline.load_source(config.dataset)
    table = signal_table()
    table["angle_deg"] = table["angle_deg"] + 7.0  # the corrected signal
    write_csv(layout / "P01" / "ramp.csv", table)
    with caplog.at_level(logging.INFO):
        second, second_info = pipeline.load_source(config.dataset)
    assert second_info.full_name != first_info.full_name
    assert "recording file P01/ramp.csv changed" in caplog.text
    np.testing.assert_allclose(second[0]["angle_deg"], first[0]["angle_deg"] + 7.0, atol=1e-4)


@case("stale data", "the config pointed at another recordings folder", "another dataset, never the cached one")
def test_another_recordings_folder_is_another_dataset(tmp_path):
    config = _recordings_config(make_layout(tmp_path / "a"), tmp_path / "tfds")
    one = pipeline.builder_from_config(config.dataset).info.full_name
    config.dataset.manual_dir = str(make_layout(tmp_path / "b"))
    assert pipeline.builder_from_config(config.dataset).info.full_name != one


@case("stale data", "the code that makes a dataset's records changed (phantom, readers, ROI stage)",
      "another dataset; the log names the changed file")
def test_changed_dataset_code_is_another_dataset(smoke_dataset, monkeypatch):
    config = smoke_dataset.config()
    built = pipeline.builder_from_config(config.dataset)
    changed = dict(identity.code_digests())
    changed["muscle_jax/data/phantom/imaging.py"] = "0" * 64
    monkeypatch.setattr(identity, "code_digests", lambda: changed)
    rebuilt = pipeline.builder_from_config(config.dataset)
    assert rebuilt.info.full_name != built.info.full_name
    assert "code muscle_jax/data/phantom/imaging.py changed" in pipeline.explain_rebuild(rebuilt)


# ---------------------------------------------------------------- resume


@pytest.fixture
def finished_run(smoke_run, tmp_path):
    """A writable copy of the session's finished smoke run."""
    workdir = tmp_path / "run"
    shutil.copytree(smoke_run, workdir)
    return workdir


@case("resume", "a finished or interrupted workdir rerun with another learning rate, seed or step count",
      "refused before any work, naming each differing field and how to start fresh")
def test_a_rerun_with_another_config_is_refused(smoke_dataset, finished_run):
    config = smoke_dataset.config()
    config.train.learning_rate = 0.01
    config.seed = 3
    with pytest.raises(workdir_lib.ConfigMismatch, match=r"seed: 0 → 3; train.learning_rate: 0.002 → 0.01.*--workdir"):
        train.train_and_evaluate_on(config, finished_run, smoke_dataset.source, smoke_dataset.info)


@case("resume", "the same, with --resume_with_changed_config", "continues from the checkpoints; run.json records the changes")
def test_a_changed_config_resumes_only_when_asked(smoke_dataset, finished_run):
    config = smoke_dataset.config()
    config.train.num_steps = 10
    train.train_and_evaluate_on(config, finished_run, smoke_dataset.source, smoke_dataset.info,
                                resume_with_changed_config=True)
    run = json.loads((finished_run / "run.json").read_text())
    assert run["resumed_with_config_changes"] == ["train.num_steps: 8 → 10"]
    assert ensemble.load(finished_run).step == 10


@case("resume", "a rerun that changes only evaluation, logging or runtime settings", "allowed: re-evaluates the same models")
def test_evaluation_only_changes_may_resume(smoke_dataset, finished_run):
    config = smoke_dataset.config()
    config.eval.batch_size = 7
    config.train.log_every = 1
    config.runtime.conv = "matmul"
    results = train.train_and_evaluate_on(config, finished_run, smoke_dataset.source, smoke_dataset.info)
    assert np.isfinite(results["models"]["cnn"]["angle_deg"]["rmse"]["mean"])


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("field, value", [
    ("train.num_steps", 0), ("train.log_every", 0), ("train.checkpoint_every", 0), ("eval.batch_size", 0),
    ("dataset.frame_stack", 0), ("train.batch_size", -4), ("train.learning_rate", float("nan")),
])
@case("settings", "a count, interval or size that must be positive given as 0 or less (num_steps, log_every, "
      "checkpoint_every, eval.batch_size, frame_stack, batch_size) or a NaN learning rate",
      "one message naming the field, its value and what is allowed, before any dataset is built")
def test_nonsense_settings_are_refused_before_any_work(field, value, tmp_path):
    config = smoke.get_config()
    section, name = field.split(".")
    config[section][name] = value
    config.dataset.data_dir = str(tmp_path / "never_built")
    with pytest.raises(ValueError, match=rf"config field {field} is {value!r}; allowed: "):
        train.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "never_built").exists()


@case("settings", "folds.max_train_groups larger than the groups a fold can train on",
      "refused, naming the field and the largest value the data allows")
def test_more_training_groups_than_exist_is_refused(smoke_dataset):
    config = smoke_dataset.config()
    config.folds.max_train_groups = 5
    index = pipeline.read_index(smoke_dataset.source, tuple(config.dataset.targets))
    with pytest.raises(ValueError, match=r"folds.max_train_groups is 5; allowed: 0 \(all\) or 1 to 2"):
        validation.check_against_data(config, index)


# ---------------------------------------------------------------- checkpoints


def _data_files(step_dir: Path) -> list[Path]:
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d")


@case("checkpoints", "the latest checkpoint truncated (a killed copy, a full disk)",
      "reported (folder and error), moved aside, and training resumes from the intact one before it")
def test_a_truncated_latest_checkpoint_falls_back_to_the_previous(smoke_dataset, finished_run, caplog):
    for path in _data_files(finished_run / "checkpoints" / "8"):
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    with caplog.at_level(logging.WARNING):
        train.train_and_evaluate_on(smoke_dataset.config(), finished_run, smoke_dataset.source, smoke_dataset.info)
    assert "checkpoints/8 is damaged: could not be read" in caplog.text and "intact one at step 6" in caplog.text
    assert (finished_run / checkpoint.DAMAGED_DIR / "8").is_dir()
    assert ensemble.load(finished_run).step == 8  # step 8 trained again from step 6


@case("checkpoints", "a byte flipped inside the latest checkpoint's data",
      "the digest recorded at save time does not match: reported, and the previous intact one is used")
def test_a_flipped_byte_is_caught_by_the_digest(smoke_dataset, finished_run):
    checkpoints = checkpoint.manager(finished_run, read_only=True)
    config = smoke_dataset.config()
    state = train.build_state(config, runtime.resolve(config.runtime), 3, 3, (32, 32, 1), train.sharding.make_mesh(3))
    intact, _ = checkpoint.restore_latest(checkpoints, state)
    for path in _data_files(finished_run / "checkpoints" / "8"):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    checkpoints = checkpoint.manager(finished_run)
    restored, step = checkpoint.restore_latest(checkpoints, state)
    checkpoints.close()
    assert step == 6  # not the damaged 8, whatever its bytes now decode to
    assert (finished_run / checkpoint.DAMAGED_DIR / "8").is_dir()
    assert not jax.tree.all(jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),
                                         restored.params, intact.params))


@case("checkpoints", "every checkpoint damaged", "one message listing each checkpoint and what failed")
def test_no_intact_checkpoint_is_one_clear_message(smoke_dataset, finished_run):
    for step in ("6", "8"):
        for path in _data_files(finished_run / "checkpoints" / step):
            path.unlink()
    with pytest.raises(checkpoint.NoIntactCheckpoint, match=r"no intact checkpoint in .*step 8 could not be read.*step 6"):
        train.train_and_evaluate_on(smoke_dataset.config(), finished_run, smoke_dataset.source, smoke_dataset.info)


@case("checkpoints", "the optimiser state of a checkpoint damaged", "prediction still loads: it restores and verifies "
      "only the parameters")
def test_prediction_restores_and_verifies_only_the_parameters(finished_run):
    metadata_file = finished_run / "checkpoints" / "8" / "_CHECKPOINT_METADATA"
    metadata = json.loads(metadata_file.read_text())
    metadata["custom_metadata"][checkpoint.DIGESTS_KEY]["opt_state"] = "damaged"
    metadata_file.write_text(json.dumps(metadata))
    assert ensemble.load(finished_run).step == 8
    metadata["custom_metadata"][checkpoint.DIGESTS_KEY]["params"] = "damaged"
    metadata_file.write_text(json.dumps(metadata))
    assert ensemble.load(finished_run).step == 6


# ---------------------------------------------------------------- causes


@case("errors", "training diverges (a non-finite loss)",
      "one line naming the fold and step, exit 1; checkpoints closed cleanly, no temporary folder left")
def test_a_non_finite_loss_ends_in_one_line_and_leaves_no_temporary_folder(smoke_dataset, tmp_path):
    result = _run_cli("muscle_jax.main", "--config=configs/smoke.py", f"--workdir={tmp_path}",
                      f"--config.dataset.data_dir={smoke_dataset.data_dir}", "--config.train.learning_rate=1e9")
    last = _one_line_error(result)
    assert last.startswith("error: training stopped: fold ") and "non-finite loss" in last
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if not p.name.isdigit()]
    assert leftovers == [] and not (tmp_path / workdir_lib.LOCK_FILE).exists()


@case("errors", "a phantom-trained run given to predict", "refused before any model is loaded, saying why")
def test_predict_refuses_a_phantom_run_before_loading_it(smoke_run, tmp_path):
    result = _run_cli("muscle_jax.predict", f"--workdir={smoke_run}", f"--input={tmp_path / 'x.mp4'}",
                      f"--output={tmp_path / 'out.csv'}")
    assert "roi_source 'oracle'" in _one_line_error(result)


@case("errors", "a misspelled config override on the command line", "one line naming it, with the field meant; exit 2")
def test_a_misspelled_override_is_one_line(tmp_path):
    result = _run_cli("muscle_jax.main", "--config=configs/smoke.py", f"--workdir={tmp_path}", "--config.train.nmu_steps=3")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: a --config override names no field: nmu_steps (did you mean num_steps?)")


@case("errors", "predict given a file that does not exist", "one line naming the file, exit 1")
def test_predict_errors_are_one_line(tmp_path):
    result = _run_cli("muscle_jax.predict", f"--workdir={tmp_path}", f"--input={tmp_path / 'x.mp4'}",
                      f"--output={tmp_path / 'out.csv'}")
    assert str(tmp_path / "run.json") in _one_line_error(result)


# ---------------------------------------------------------------- inputs


def _write_mkv(path: Path, frames_NxHxW: np.ndarray, fps: int = 30) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames_NxHxW.shape[1:]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "0", "g": "4"}
        for gray in frames_NxHxW:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, -1), format="rgb24")))
        container.mux(stream.encode())
    return path


@case("inputs", "a truncated streamed container (mkv: no frame count in its header)",
      "an error naming the file, unless skipping is asked for; then the shortfall is counted")
def test_a_truncated_streamed_video_is_not_taken_for_a_short_one(tmp_path):
    truncated = truncate(_write_mkv(tmp_path / "clip.mkv", synthetic_frames(59)), 0.3)
    decoded = read_video(truncated)
    assert decoded.missing > 40  # 59 frames declared by its duration
    with pytest.raises(ValueError, match=r"truncated_clip\.mkv: truncated or corrupt"):
        decoded.require_complete(skip_bad_frames=False)
    assert decoded.require_complete(skip_bad_frames=True).missing == decoded.missing


@case("inputs", "signal timestamps written in milliseconds, frame times in seconds",
      "an error naming both files and both time spans")
def test_signal_times_in_milliseconds_are_refused(tmp_path):
    layout = make_layout(tmp_path / "layout")
    table = signal_table()
    table["time_s"] = table["time_s"] * 1000.0
    write_csv(layout / "P01" / "ramp.csv", table)
    trial = next(t for t in recordings.list_trials("recordings", layout) if t.name == "P01_ramp")
    with pytest.raises(ValueError, match=r"ramp\.mp4: the frames span 0–0\.3667 s but .*ramp\.csv spans 0–499"):
        recordings.load_trial(trial, (16, 20), "calibration", ("angle_deg",))


@case("inputs", "16-bit images whose frames reach different maxima",
      "one scaling rule for the whole recording: the same pixel value is the same grey level in every frame")
def test_sixteen_bit_frames_share_one_scaling_rule(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    dim, bright = np.full((8, 8), 1000, np.uint16), np.full((8, 8), 1000, np.uint16)
    bright[0, 0] = 4000
    Image.fromarray(dim).save(folder / "0.png")
    Image.fromarray(bright).save(folder / "1.png")
    frames = image_files.read_image_folder(folder).images_N
    assert frames[0][1, 1] == frames[1][1, 1] == round(1000 * 255 / 4095)
    first, second = image_files.read_gray_images(sorted(folder.glob("*.png")))
    assert first[1, 1] == second[1, 1]


@case("inputs", "segment given x.png and x.jpg (two inputs, one output name)", "both written, under distinct names")
def test_segment_output_names_never_collide(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "x.png")
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(folder / "x.jpg")
    assert segment_input(folder, tmp_path / "out", None, (16, 16), 2) == 2
    assert {p.name for p in (tmp_path / "out").glob("*.png")} == {"x_png.png", "x_jpg.png"}


@case("inputs", "segment given a 16-bit image, which predict accepts", "read by the same reader as predict: segmented")
def test_segment_reads_sixteen_bit_images(tmp_path):
    Image.fromarray(np.full((32, 32), 3000, np.uint16)).save(tmp_path / "deep.png")
    assert segment_input(tmp_path / "deep.png", tmp_path / "out", None, (16, 16), 1) == 1


# ---------------------------------------------------------------- two runs, one workdir


@case("workdir", "a second run started on a workdir in use", "refused with the owner's PID and host")
def test_a_busy_workdir_refuses_a_second_run(tmp_path):
    (tmp_path / workdir_lib.LOCK_FILE).write_text(json.dumps({"pid": 1, "host": os.uname().nodename, "started": "x"}))
    with pytest.raises(workdir_lib.WorkdirBusy, match=r"in use by process 1 on "):
        with workdir_lib.locked(tmp_path):
            pass


@case("workdir", "a lock left by a process that died", "taken over with a warning")
def test_a_stale_lock_is_taken_over(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / workdir_lib.LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    with caplog.at_level(logging.WARNING), workdir_lib.locked(tmp_path):
        assert json.loads((tmp_path / workdir_lib.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "no longer running" in caplog.text and not (tmp_path / workdir_lib.LOCK_FILE).exists()


# ---------------------------------------------------------------- the doc


@pytest.mark.skipif(bool(os.environ.get("MUSCLE_JAX_RELIABILITY_DOC")), reason="this run rewrites the doc")
def test_the_doc_lists_every_case():
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ") and not line.startswith("| area")]
    documented = [tuple(cell.strip() for cell in row.strip("|").split("|"))[:3] for row in rows[1:]]
    assert documented == [(area, fault, outcome) for _, area, fault, outcome in CASES], (
        "docs/reliability.md is out of date: MUSCLE_JAX_RELIABILITY_DOC=docs/reliability.md "
        "python -m pytest -q tests/test_reliability.py"
    )
