"""Checkpoints (training/checkpoint.py): an earlier version's checkpoint, whose settings name options this
version no longer has, loads when each is at its neutral value and is refused naming the first one otherwise."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_asc.config import ConfigError  # noqa: E402
from edge_asc.training.checkpoint import CHECKPOINT_NAME, REMOVED_OPTIONS, load_checkpoint  # noqa: E402
from edge_asc.training.export import export_onnx  # noqa: E402
from edge_asc.training.train import fit_segments  # noqa: E402
from training.generated import CLASSES, tiny_config  # noqa: E402

torch.set_num_threads(1)


def _set(settings: dict, key: str, value) -> None:
    """Set a REMOVED_OPTIONS key (``train.augment.pieces``, ``model.input_clip``) in a checkpoint's train_config."""
    section, *path = key.split(".")
    node = settings if section == "train" else settings[section]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _old_format(state: dict, **changed) -> dict:
    """``state`` as an earlier version wrote it: every removed option recorded (neutral unless ``changed``,
    keys with '__' for '.'), the network sizes among the model settings, and the EMA fields."""
    old = copy.deepcopy(state)
    sizes = {k: old["model_config"][k] for k in ("n_features", "n_frames", "n_classes")}
    for key, neutral in REMOVED_OPTIONS.items():
        _set(old["train_config"], key, changed.get(key.replace(".", "__"), neutral))
    old["train_config"]["model"].update(sizes)
    old["model_config"] = dict(old["train_config"]["model"])
    old["train_weights"], old["ema_steps"] = None, 0
    return old


@pytest.fixture(scope="module")
def new_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    x = np.random.default_rng(0).standard_normal((60, 20, 52)).astype(np.float32)
    trained = fit_segments(tiny_config(epochs=1), x, np.arange(60) % 3, CLASSES, out_dir=out, progress=False)
    return torch.load(out / CHECKPOINT_NAME, weights_only=False), trained, x


def test_an_old_checkpoint_with_neutral_removed_options_loads_and_exports(tmp_path, new_checkpoint):
    state, trained, x = new_checkpoint
    torch.save(_old_format(state), tmp_path / CHECKPOINT_NAME)
    loaded = load_checkpoint(tmp_path)
    assert loaded.config == trained.config and loaded.epoch == 1 and loaded.labels == CLASSES
    np.testing.assert_array_equal(loaded.embed(x[:5]), trained.embed(x[:5]))
    # its summary keeps the settings as that version recorded them, removed options included
    assert loaded.summary()["config"]["augment"]["pieces"] == 1 and loaded.model_settings["n_features"] == 52
    assert export_onnx(tmp_path / CHECKPOINT_NAME, tmp_path / "enc.onnx").is_file()


@pytest.mark.parametrize("key, value", [("train.ema_decay", 0.999), ("train.augment.pieces", 3), ("model.input_clip", 4.0)])
def test_an_old_checkpoint_with_a_removed_option_in_use_is_refused_naming_it(tmp_path, new_checkpoint, key, value):
    state, _, _ = new_checkpoint
    torch.save(_old_format(state, **{key.replace(".", "__"): value}), tmp_path / CHECKPOINT_NAME)
    with pytest.raises(ConfigError, match=f"trained with {key} = {value!r}, an option this version no longer has") as err:
        load_checkpoint(tmp_path)
    assert "\n" not in str(err.value)


def test_a_run_resumes_from_an_old_checkpoint_with_neutral_removed_options(tmp_path, new_checkpoint):
    state, _, x = new_checkpoint
    torch.save(_old_format(state), tmp_path / CHECKPOINT_NAME)
    resumed = fit_segments(tiny_config(epochs=2), x, np.arange(60) % 3, CLASSES, out_dir=tmp_path, resume=True, progress=False)
    assert resumed.epoch == 2 and load_checkpoint(tmp_path).epoch == 2
