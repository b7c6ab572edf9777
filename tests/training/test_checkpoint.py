"""Checkpoints (training/checkpoint.py): a checkpoint written by version 0.1.0 loads, exports and resumes;
one whose settings use an option this version no longer has is refused, naming it.

fixtures/checkpoint-0.1.0.pt is a real checkpoint of version 0.1.0 (commit 0c63cc8, the shipped recipe):
tests/training/fixtures/make_old_checkpoint.py, run from a checkout of that commit, wrote it (1 epoch of
the audio variant, hidden size 4, on seeded noise features: ``old_checkpoint_data`` below is a copy of that
script's) and printed the references below. That version records every option it had (the ones removed
since at their neutral values), the network sizes among the model settings, and EMA fields.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_asc.config import ConfigError  # noqa: E402
from edge_asc.training.checkpoint import CHECKPOINT_NAME, REMOVED_OPTIONS, load_checkpoint  # noqa: E402
from edge_asc.training.config import ModelConfig, TrainConfig  # noqa: E402
from edge_asc.training.export import export_onnx  # noqa: E402
from edge_asc.training.history import EpochRecord  # noqa: E402
from edge_asc.training.train import fit_segments  # noqa: E402
from training.generated import CLASSES  # noqa: E402

torch.set_num_threads(1)

OLD_CHECKPOINT = Path(__file__).resolve().parent / "fixtures" / "checkpoint-0.1.0.pt"
# the settings it was trained with (make_old_checkpoint.py), in this version's terms
OLD_CONFIG = TrainConfig(epochs=1, batch_size=12, classes_per_batch=3, seed=3, threads=1, model=ModelConfig(hidden_size=4))
OLD_EMBEDDING_SUM = 5.776949836406857  # of its embeddings of the first 4 segments, computed by 0.1.0
# (0.1.0 also recorded the weights it reached resuming for a second epoch; this version resumes such a
# checkpoint under its own counter-based randomness, so it reaches other weights: see the resume test.)


def old_checkpoint_data() -> tuple[np.ndarray, np.ndarray]:
    """The features (30, 20, 52) and labels (30,) it was trained on (as make_old_checkpoint.py makes them)."""
    return np.random.default_rng(0).standard_normal((30, 20, 52)).astype(np.float32), np.arange(30) % 3


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A run folder holding a copy of the 0.1.0 checkpoint."""
    shutil.copyfile(OLD_CHECKPOINT, tmp_path / CHECKPOINT_NAME)
    return tmp_path


def _set(settings: dict, key: str, value) -> None:
    """Set a REMOVED_OPTIONS key (``train.augment.pieces``, ``model.input_clip``) in a checkpoint's train_config."""
    section, *path = key.split(".")
    node = settings if section == "train" else settings[section]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def test_the_fixture_is_a_small_checkpoint_of_version_0_1_0_with_every_removed_option_neutral():
    assert OLD_CHECKPOINT.stat().st_size < 100_000
    state = torch.load(OLD_CHECKPOINT, weights_only=False)
    assert state["version"] == "0.1.0" and "ema_steps" in state and state["model_config"]["n_features"] == 52
    for key, neutral in REMOVED_OPTIONS.items():
        section, *path = key.split(".")
        node = state["train_config"] if section == "train" else state["train_config"][section]
        for part in path:
            node = node[part]
        assert node == neutral, key


def test_a_checkpoint_of_version_0_1_0_loads_computing_what_that_version_computed(old_run):
    loaded = load_checkpoint(old_run)
    assert loaded.config == OLD_CONFIG and loaded.epoch == 1 and loaded.labels == CLASSES
    x, _ = old_checkpoint_data()
    np.testing.assert_allclose(float(loaded.embed(x[:4]).astype(np.float64).sum()), OLD_EMBEDDING_SUM, rtol=1e-5)
    # its history reads as records; its summary keeps the settings as that version recorded them
    (record,) = loaded.history
    assert isinstance(record, EpochRecord) and record.epoch == 1 and record.segments == 30 and 0 < record.importance < 1
    summary = loaded.summary()
    assert summary["final_loss"] == record.loss and summary["config"]["augment"]["pieces"] == 1
    assert loaded.model_settings["n_features"] == 52 and loaded.model_settings["input_clip"] == 0.0


def test_a_checkpoint_of_version_0_1_0_exports_an_encoder_the_runtime_reads(old_run):
    from edge_asc.runtime.encoder import Encoder

    onnx_path = export_onnx(old_run / CHECKPOINT_NAME, old_run / "enc.onnx")
    encoder = Encoder(onnx_path, threads=1)
    assert encoder.meta.labels == CLASSES and encoder.meta.train["epochs"] == 1
    x, _ = old_checkpoint_data()
    np.testing.assert_allclose(float(encoder.embed(x[:4]).astype(np.float64).sum()), OLD_EMBEDDING_SUM, rtol=1e-4)


def test_a_run_resumed_from_a_checkpoint_of_version_0_1_0_continues_from_its_weights_under_the_new_randomness(old_run, tmp_path_factory, caplog):
    x, y = old_checkpoint_data()
    config = TrainConfig(epochs=2, batch_size=12, classes_per_batch=3, seed=3, threads=1, model=ModelConfig(hidden_size=4))
    # stopped before any new epoch: the checkpoint's own weights (0.1.0's embeddings)
    start = fit_segments(config, x, y, CLASSES, out_dir=old_run, resume=True, progress=False, stop_after=1)
    np.testing.assert_allclose(float(start.embed(x[:4]).astype(np.float64).sum()), OLD_EMBEDDING_SUM, rtol=1e-5)
    copy = tmp_path_factory.mktemp("copy")
    shutil.copyfile(old_run / CHECKPOINT_NAME, copy / CHECKPOINT_NAME)
    caplog.clear()
    resumed = fit_segments(config, x, y, CLASSES, out_dir=old_run, resume=True, progress=False)
    assert "written by version 0.1.0: the run continues under this version's counter-based randomness" in caplog.text
    # the saved generator states are not used: resuming again gives the same weights (no hidden state)
    again = fit_segments(config, x, y, CLASSES, out_dir=copy, resume=True, progress=False)
    w = torch.cat([p.detach().flatten() for p in resumed.model.parameters()])
    assert torch.equal(w, torch.cat([p.detach().flatten() for p in again.model.parameters()]))
    assert not torch.equal(w, torch.cat([p.detach().flatten() for p in start.model.parameters()]))
    # the old epoch's record is kept, the new one appended, and both are written back as that version wrote them
    assert [h.epoch for h in resumed.history] == [1, 2]
    state = torch.load(old_run / CHECKPOINT_NAME, weights_only=False)
    assert state["history"][0] == torch.load(OLD_CHECKPOINT, weights_only=False)["history"][0]
    assert set(state["history"][1]) == set(state["history"][0])
    assert "rng" not in state and state["world_size"] == 1
    assert load_checkpoint(old_run).history == resumed.history


@pytest.mark.parametrize("key, value", [("train.ema_decay", 0.999), ("train.augment.pieces", 3), ("model.input_clip", 4.0)])
def test_an_old_checkpoint_with_a_removed_option_in_use_is_refused_naming_it(old_run, key, value):
    state = torch.load(OLD_CHECKPOINT, weights_only=False)
    _set(state["train_config"], key, value)
    torch.save(state, old_run / CHECKPOINT_NAME)
    with pytest.raises(ConfigError, match=f"trained with {key} = {value!r}, an option this version no longer has") as err:
        load_checkpoint(old_run)
    assert "\n" not in str(err.value)


def test_a_checkpoint_with_a_damaged_history_is_refused_naming_the_file(old_run):
    state = torch.load(OLD_CHECKPOINT, weights_only=False)
    del state["history"][0]["loss"]
    torch.save(state, old_run / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match=f"{CHECKPOINT_NAME}: a history record lacks loss"):
        load_checkpoint(old_run)
