"""The trained model and its checkpoint file: writing it atomically, reading it back (older ones too),
and deciding whether a run may resume from it.

A checkpoint (format 1) is a ``torch.save``d dict: ``model`` (state_dict), ``optimizer``, ``epoch``,
``train_config`` (``to_dict`` of the TrainConfig), ``model_config`` (the model settings plus the network's
sizes ``n_features``, ``n_frames``, ``n_classes``), ``labels``, ``features``, ``normalization``, ``history``
(``EpochRecord.to_dict`` per epoch), ``data`` (what it was trained on), ``world_size`` (the training
processes it was trained with; resumes on any number) and ``version``. No generator state: every random
choice of training is a function of (seed, epoch, rank) (training/streams.py). Checkpoints of 0.1.0 also
hold ``rng`` (their generators' states) and no ``world_size`` (1): they load and resume, the states unused.

Checkpoints of earlier versions record options this version no longer has (``REMOVED_OPTIONS``): one
with each at the value that left training as it is now loads; any other value is refused, naming it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_asc import __version__
from edge_asc.config import ConfigError, from_dict, to_dict
from edge_asc.dsp.features import FeatureConfig
from edge_asc.fsutil import atomic_open
from edge_asc.training.config import REMOVED_OPTIONS, ModelConfig, TrainConfig
from edge_asc.training.history import EpochRecord
from edge_asc.training.model import EncoderNet

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
EMBED_BATCH = 4096  # segments per forward pass when embedding
RESUMABLE_CHANGES = ("epochs", "threads")  # train settings that may differ on --resume
NET_SIZES = ("n_features", "n_frames", "n_classes")  # EncoderNet's sizes, recorded in model_config


def model_record(net: EncoderNet) -> dict[str, Any]:
    """The model's settings and the sizes derived from the data, as checkpoints and ONNX metadata record them."""
    return to_dict(net.config) | {"n_features": net.n_features, "n_frames": net.n_frames, "n_classes": net.n_classes}


@dataclass(eq=False)
class TrainedModel:
    """An encoder with everything needed to use, export or resume it."""

    model: EncoderNet
    config: TrainConfig
    labels: tuple[str, ...]
    epoch: int  # epochs done
    history: list[EpochRecord] = field(default_factory=list)  # one per epoch done
    data: dict[str, Any] = field(default_factory=dict)  # what it was trained on (counts, fingerprint)
    path: Path | None = None  # its checkpoint file, when it has one
    # the settings as recorded when it was trained (to_dict of a TrainConfig; a checkpoint's own record when
    # loaded, which for an earlier version's checkpoint also names its removed options at their neutral values)
    recorded: dict[str, Any] | None = None
    world_size: int = 1  # the training processes (ranks) it was trained with

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def feature_config(self) -> FeatureConfig:
        return self.config.features

    @property
    def recorded_settings(self) -> dict[str, Any]:
        """The train settings as recorded when it was trained (goes into the ONNX metadata's ``train.config``)."""
        return copy.deepcopy(self.recorded) if self.recorded is not None else to_dict(self.config)

    @property
    def model_settings(self) -> dict[str, Any]:
        """The model settings as recorded when it was trained (for the ONNX metadata's ``model``): ``to_dict``
        of ``model_config`` with the network's sizes (as every version wrote them), or for an earlier
        version's checkpoint its own record (with its removed options)."""
        if self.recorded is None:
            return model_record(self.model)
        record = copy.deepcopy(self.recorded["model"])
        for name in NET_SIZES:  # this version's checkpoints keep the sizes apart from the settings
            record.setdefault(name, getattr(self.model, name))
        return record

    @torch.no_grad()
    def embed(self, features: np.ndarray) -> np.ndarray:
        """(N, 20, 52) raw features -> (N, D) float32 embeddings (eval mode)."""
        return self._batched(features, lambda x: self.model(x))

    @torch.no_grad()
    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, 20, 52) -> (N, n_classes) class probabilities of the softmax variant's head."""
        return self._batched(features, lambda x: torch.softmax(self.model.logits(self.model.encode(x).similarity), dim=-1))

    def _batched(self, features: np.ndarray, fn) -> np.ndarray:
        self.model.eval()
        out = [fn(torch.from_numpy(np.ascontiguousarray(features[i : i + EMBED_BATCH], dtype=np.float32))).numpy()
               for i in range(0, features.shape[0], EMBED_BATCH)]
        if not out:
            return np.zeros((0, self.model_config.embedding_size), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """A small JSON-safe description (goes into the ONNX metadata as ``train``)."""
        return {
            "epochs": self.epoch,
            "final_loss": self.history[-1].loss if self.history else None,
            "data": self.data,
            "config": self.recorded_settings,
            "torch": torch.__version__,
            "edge_asc": __version__,
        }


# --- writing --------------------------------------------------------------------------------------------


def checkpoint_path(path: str | Path) -> Path:
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def checkpoint_state(
    trained: TrainedModel,
    normalization: tuple[np.ndarray, np.ndarray],
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    """Everything a checkpoint holds after ``trained.epoch`` epochs (see the module docstring).

    normalization: the training set's (mean, std), each (F,), as computed (the model clamps tiny stds)."""
    net = trained.model
    mean, std = normalization
    return {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": trained.epoch,
        "model_config": model_record(net),
        "train_config": to_dict(trained.config),
        "labels": list(trained.labels),
        "features": trained.feature_config.to_dict(),
        "normalization": {"mean": mean.tolist(), "std": std.tolist()},
        "history": [record.to_dict() for record in trained.history],
        "data": trained.data,
        "world_size": trained.world_size,
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save through a temporary sibling that replaces ``path`` when complete: a crash never leaves half a checkpoint."""
    with atomic_open(path) as f:
        torch.save(state, f)


# --- reading --------------------------------------------------------------------------------------------


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict; a missing, damaged or foreign file is a one-line error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an edge-asc checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def current_settings(recorded: dict[str, Any], path: Path) -> dict[str, Any]:
    """A checkpoint's ``train_config`` in this version's keys: removed options (refused unless at their
    neutral value) and the network sizes that earlier versions kept among the model settings are taken out."""
    out = copy.deepcopy(recorded)
    for key, neutral in REMOVED_OPTIONS.items():
        *parents, name = key.split(".")
        node = out if parents[0] == "train" else out.get(parents[0], {})  # train.* keys sit at the top
        for part in parents[1:]:
            node = node.get(part, {})
        if name in node:
            value = node.pop(name)
            if value != neutral:
                raise ConfigError(
                    f"{path}: trained with {key} = {value!r}, an option this version no longer has (only {neutral!r} can be loaded)"
                )
    for name in NET_SIZES:
        out.get("model", {}).pop(name, None)
    return out


def checkpoint_history(state: dict[str, Any], path: Path) -> list[EpochRecord]:
    """A checkpoint's ``history`` (plain dicts, as every version wrote it) as records; a damaged one is a
    one-line error naming the file."""
    try:
        return [EpochRecord.from_dict(record) for record in state["history"]]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def load_checkpoint(path: str | Path) -> TrainedModel:
    """A run folder or checkpoint file -> the trained model (eval mode)."""
    path = checkpoint_path(path)
    state = read_checkpoint(path)
    config = from_dict(TrainConfig, current_settings(state["train_config"], path))
    sizes = {name: int(state["model_config"][name]) for name in NET_SIZES}
    model = EncoderNet(config.model, **sizes)
    model.load_state_dict(state["model"])
    model.eval()
    return TrainedModel(
        model, config, tuple(state["labels"]), int(state["epoch"]), checkpoint_history(state, path), dict(state["data"]), path,
        recorded=state["train_config"], world_size=int(state.get("world_size", 1)),
    )


def check_settings(state: dict[str, Any], config: TrainConfig, labels: tuple[str, ...], path: Path) -> None:
    """Refuse to resume with other settings or labels, naming the first difference (before any data is read)."""
    saved = current_settings(state["train_config"], path)
    now = to_dict(config)
    for key in RESUMABLE_CHANGES:
        saved.pop(key, None)
        now.pop(key, None)
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            raise ConfigError(f"{path}: cannot resume: train setting {key!r} was {saved.get(key)!r}, now {now.get(key)!r}")
    if tuple(state["labels"]) != labels:
        raise ConfigError(f"{path}: cannot resume: labels differ (checkpoint {list(state['labels'])}, data {list(labels)})")


def check_data(state: dict[str, Any], data: dict[str, Any], path: Path) -> None:
    """Refuse to resume on other training data (``data``: the source's fingerprint with its counts)."""
    if state["data"] != data:
        raise ConfigError(f"{path}: cannot resume: the training data differ (checkpoint {state['data']}, now {data})")

