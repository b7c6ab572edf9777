"""Training the encoder: labelled scenes -> features (augmented each epoch) -> triplet batches -> Adam.

The loop (``fit``) reads top to bottom: seed, normalisation from the clean training features, model and
optimiser, optionally a checkpoint to resume from, then per epoch: draw the epoch's features (a fresh
augmentation of every scene), cut them into class-balanced batches, mine semi-hard triplets in each
batch, step, and write a complete checkpoint atomically.

Entry points:
* ``train(config, dataset, scene_indices, out_dir)`` - a dataset's scenes, with checkpoints (the CLI).
* ``fit_scenes(config, audio, labels, recordings, label_names)`` - scene waveforms in memory, augmented
  each epoch (what the evaluation calls per fold).
* ``fit_segments(config, features, labels, label_names)`` - fixed (N, 20, 52) features, no waveform
  augmentation.
* ``load_checkpoint(path)`` -> ``TrainedModel`` (run folder or checkpoint.pt).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edge_asc import __version__
from edge_asc.training.augment import Augmenter
from edge_asc.config import ConfigError, from_dict, to_dict
from edge_asc.dsp.features import FeatureConfig, FeatureExtractor
from edge_asc.training.loss import audio_loss, mine_triplets, triplet_loss
from edge_asc.training.model import Encoder
from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig

log = logging.getLogger(__name__)

__all__ = [
    "AugmentConfig",
    "ModelConfig",
    "TrainConfig",
    "TrainedModel",
    "train",
    "fit_scenes",
    "fit_segments",
    "load_checkpoint",
    "CHECKPOINT_NAME",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
EMBED_BATCH = 4096  # segments per forward pass when embedding
PROGRESS_EVERY_S = 30.0  # an in-epoch progress line at most this often
BAR_WIDTH = 20
RESUMABLE_CHANGES = ("epochs", "threads")  # train settings that may differ on --resume


# --- the trained model ----------------------------------------------------------------------------


@dataclass(eq=False)
class TrainedModel:
    """An encoder with everything needed to use, export or resume it."""

    model: Encoder
    config: TrainConfig
    labels: tuple[str, ...]
    epoch: int  # epochs done
    history: list[dict[str, float]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # what it was trained on (counts, fingerprint)
    path: Path | None = None  # its checkpoint file, when it has one

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def feature_config(self) -> FeatureConfig:
        return self.config.features

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
        last = self.history[-1] if self.history else {}
        return {
            "epochs": self.epoch,
            "final_loss": last.get("loss"),
            "data": self.data,
            "config": to_dict(self.config),
            "torch": torch.__version__,
            "edge_asc": __version__,
        }


# --- data sources: what one epoch trains on ------------------------------------------------------------


class SceneSource:
    """Scene waveforms; each epoch's features come from a fresh augmentation of every scene."""

    def __init__(self, config: TrainConfig, audio: Sequence[np.ndarray], labels: np.ndarray, recordings: np.ndarray) -> None:
        self.extractor = FeatureExtractor(config.features)
        fc = config.features
        self.augmenter = Augmenter(config.augment, fc.sample_rate, fc.segment_samples)
        keep = [i for i, x in enumerate(audio) if x.shape[0] >= fc.segment_samples]
        if not keep:
            raise ValueError("no training scene is at least one segment long")
        self.audio = [np.asarray(audio[i], dtype=np.float32) for i in keep]
        self.labels = np.asarray(labels, dtype=np.int64)[keep]
        self.recordings = np.asarray(recordings, dtype=np.int64)[keep]
        self._clean: tuple[np.ndarray, np.ndarray] | None = None

    def _features(self, audio: list[np.ndarray], owner: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features of each stream in ``audio``; owner: (n_streams,) the scene each stream comes from."""
        feats = [self.extractor.signal_features(x) for x in audio]  # [(n_i, 20, 52)]
        counts = np.array([f.shape[0] for f in feats])
        owner = np.repeat(owner, counts)  # (N,)
        # (N, 20, 52) features, (N,) labels, (N,) recordings
        return np.concatenate(feats), self.labels[owner], self.recordings[owner]

    def clean(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._clean is None:
            self._clean = self._features(self.audio, np.arange(len(self.audio)))
        return self._clean

    def epoch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.augmenter.config.enabled:
            return self.clean()
        augmented = self.augmenter.epoch(self.audio, self.labels, self.recordings, rng)
        return self._features(*self.augmenter.split(augmented, rng))

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256(self.labels.tobytes())
        h.update(np.array([x.shape[0] for x in self.audio], dtype=np.int64).tobytes())
        for x in self.audio:
            h.update(x[:: max(1, x.shape[0] // 64)].tobytes())  # a cheap sample of the audio itself
        return {"kind": "scenes", "scenes": len(self.audio), "sha256": h.hexdigest()}


class SegmentSource:
    """Fixed segment features (no waveform augmentation), optionally with each segment's recording."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, recordings: np.ndarray | None = None) -> None:
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.recordings = None if recordings is None else np.asarray(recordings, dtype=np.int64)
        if self.features.ndim != 3 or self.features.shape[0] != self.labels.shape[0]:
            raise ValueError(f"need (N, frames, features) features and (N,) labels, got {self.features.shape} and {self.labels.shape}")
        if self.recordings is not None and self.recordings.shape != self.labels.shape:
            raise ValueError(f"need (N,) recordings, got {self.recordings.shape} for {self.labels.shape[0]} segments")

    def clean(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.features, self.labels, self.recordings

    def epoch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.features, self.labels, self.recordings

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256(self.labels.tobytes())
        h.update(self.features[:: max(1, self.features.shape[0] // 256)].tobytes())
        if self.recordings is not None:
            h.update(self.recordings.tobytes())
        return {"kind": "segments", "segments": int(self.labels.shape[0]), "sha256": h.hexdigest()}


# --- small pieces of the loop -------------------------------------------------------------------------


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


IQR_TO_STD = 1.349  # the interquartile range of a normal distribution in standard deviations


def normalization(features: np.ndarray, robust: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature centre and scale over every window of the (clean) training segments.

    robust: median and IQR / 1.349 instead of mean and std. The first windows of a stream's first segment
    see the zeros before the stream: their deltas (and the percussive flux) are ~50x larger than anywhere
    else. They are under 1% of the windows but inflate the std of those features ~2.5x, squashing them for
    every other segment; robust statistics ignore them.
    """
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)  # (N * 20, 52)
    if robust:
        q1, median, q3 = np.percentile(flat, [25, 50, 75], axis=0)  # (52,) each
        return median.astype(np.float32), ((q3 - q1) / IQR_TO_STD).astype(np.float32)
    return flat.mean(axis=0).astype(np.float32), flat.std(axis=0).astype(np.float32)


def class_balanced_batches(
    labels: np.ndarray, groups: np.ndarray | None, config: TrainConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """About len(labels) / batch_size batches, each of P classes x K items (P = classes_per_batch).

    Classes are drawn uniformly among those with >= 2 items (small classes are not drowned out, and every
    anchor has a positive). Within a class, with ``groups`` (the recording of each item) and
    ``config.balance_recordings``, a recording is drawn uniformly first and then an item of it, so that one
    long recording does not stand for its whole class; otherwise items are drawn uniformly.
    """
    classes, counts = np.unique(labels, return_counts=True)
    classes = classes[counts >= 2]
    if classes.shape[0] < 2:
        raise ValueError("training needs at least two classes with two or more segments each")
    if groups is None or not config.balance_recordings:
        groups = np.arange(labels.shape[0])  # every item its own group: uniform over items
    pools = []  # per class: (members sorted by group, start of each group, size of each group)
    for c in classes:
        members = np.flatnonzero(labels == c)
        members = members[np.argsort(groups[members], kind="stable")]
        _, starts, sizes = np.unique(groups[members], return_index=True, return_counts=True)
        pools.append((members, starts, sizes))
    p = min(config.classes_per_batch, classes.shape[0])
    k = config.batch_size // p
    n_batches = max(1, math.ceil(labels.shape[0] / (p * k)))
    batches = []
    for _ in range(n_batches):
        parts = []
        for c in rng.choice(classes.shape[0], size=p, replace=False):
            members, starts, sizes = pools[c]
            g = rng.integers(starts.shape[0], size=k)  # (K,) groups
            parts.append(members[starts[g] + (rng.random(k) * sizes[g]).astype(np.int64)])  # (K,) items
        batches.append(np.concatenate(parts))  # (P * K,)
    return batches


def perturb_features(x: torch.Tensor, model: Encoder, config: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Feature-space augmentation of a batch (training only): Gaussian noise scaled by each feature's
    training std, and ``feature_mask`` random features per segment set to their training mean."""
    cfg = config.augment
    if not cfg.enabled or (cfg.feature_noise <= 0 and cfg.feature_mask <= 0):
        return x
    mean, std = model.feature_mean, model.feature_std  # (F,), (F,)
    if cfg.feature_noise > 0:
        x = x + cfg.feature_noise * std * torch.randn(x.shape, generator=gen)  # (B, T, F)
    if cfg.feature_mask > 0:
        b, _, f = x.shape
        ranks = torch.rand((b, f), generator=gen).argsort(dim=1).argsort(dim=1)  # (B, F) a random order per segment
        masked = (ranks < cfg.feature_mask)[:, None, :]  # (B, 1, F)
        x = torch.where(masked, mean, x)  # (B, T, F)
    return x


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))
    return config.lr


def batch_loss(
    model: Encoder, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor | None, config: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """The variant's loss on one batch, and a few numbers to report. groups: (B,) recordings or None."""
    out = model.encode(x)  # similarity (B, 2H), importance (B,) or None
    if model.config.variant == "softmax":
        logits = model.logits(out.similarity)  # (B, C)
        loss = F.cross_entropy(logits, y)
        return loss, {"triplets": 0.0, "semi_hard": 0.0, "importance": float("nan")}
    t = mine_triplets(out.similarity, y, config.margin, gen, groups if config.cross_recording_positives else None)
    if out.importance is not None:
        loss = audio_loss(out.similarity, out.importance, t, config.margin, config.alpha)
        imp = float(out.importance.detach().mean())
    else:
        loss = triplet_loss(out.similarity, t, config.margin)
        imp = float("nan")
    if config.aux_softmax > 0:
        loss = loss + config.aux_softmax * F.cross_entropy(model.logits(out.similarity), y)
    n = int(t.anchor.numel())
    return loss, {"triplets": float(n), "semi_hard": float(t.semi_hard.float().mean()) if n else 0.0, "importance": imp}


class WeightAverage:
    """Exponential moving average of the weights (what is exported when ``ema_decay`` > 0).

    The weights of one step are noisy on so few recordings; their average over the last few hundred
    steps is a smoother, usually better-generalising model. Warm-up: the decay starts low so the
    average does not remember the random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.state[key].mul_(d).add_(value, alpha=1.0 - d)
            else:
                self.state[key].copy_(value)


def progress_bar(done: int, total: int) -> str:
    filled = int(round(BAR_WIDTH * done / max(1, total)))
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"


def _format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# --- checkpoints ----------------------------------------------------------------------------------------


def _rng_states(rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(), "mining": gen.get_state(), "python": random.getstate()}


def _set_rng_states(states: dict[str, Any], rng: np.random.Generator, gen: torch.Generator) -> None:
    rng.bit_generator.state = states["numpy"]
    torch.set_rng_state(states["torch"])
    gen.set_state(states["mining"])
    random.setstate(states["python"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file beside ``path``, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def checkpoint_path(path: str | Path) -> Path:
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an edge-asc checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def load_checkpoint(path: str | Path) -> TrainedModel:
    """A run folder or checkpoint file -> the trained model (eval mode)."""
    path = checkpoint_path(path)
    state = _read_checkpoint(path)
    config = from_dict(TrainConfig, state["train_config"])
    model = Encoder(from_dict(ModelConfig, state["model_config"], prefix="model."))
    model.load_state_dict(state["model"])
    model.eval()
    return TrainedModel(model, config, tuple(state["labels"]), int(state["epoch"]), list(state["history"]), dict(state["data"]), path)


def _check_resumable(state: dict[str, Any], config: TrainConfig, labels: tuple[str, ...], data: dict[str, Any], path: Path) -> None:
    """Refuse to resume into a different run, naming the first difference."""
    saved = dict(state["train_config"])
    now = to_dict(config)
    for key in RESUMABLE_CHANGES:
        saved.pop(key, None)
        now.pop(key, None)
    saved["model"] = {k: v for k, v in saved["model"].items() if k != "n_classes"}
    now["model"] = {k: v for k, v in now["model"].items() if k != "n_classes"}
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            raise ConfigError(f"{path}: cannot resume: train setting {key!r} was {saved.get(key)!r}, now {now.get(key)!r}")
    if tuple(state["labels"]) != labels:
        raise ConfigError(f"{path}: cannot resume: labels differ (checkpoint {list(state['labels'])}, data {list(labels)})")
    if state["data"] != data:
        raise ConfigError(f"{path}: cannot resume: the training data differ (checkpoint {state['data']}, now {data})")


# --- the loop --------------------------------------------------------------------------------------------


def fit(
    config: TrainConfig,
    source: SceneSource | SegmentSource,
    label_names: Sequence[str],
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainedModel:
    """Train an encoder on ``source``; with ``out_dir``, write ``checkpoint.pt`` there after every epoch.

    ``stop_after`` ends this call after that many epochs in all (as an interruption would); the
    checkpoint then resumes exactly where it stopped.
    """
    labels = tuple(label_names)
    say = log.info if progress else log.debug
    torch.set_num_threads(config.threads)
    rng = seed_everything(config.seed)
    gen = torch.Generator().manual_seed(config.seed + 1)  # triplet mining

    # model settings that follow from the data and the features
    fc = config.features
    mc = dataclasses.replace(
        config.model,
        n_features=fc.n_features,
        n_frames=fc.frames_per_segment,
        n_classes=len(labels) if config.model.variant == "softmax" or config.aux_softmax > 0 else 0,
    )
    config = dataclasses.replace(config, model=mc)

    clean_x, clean_y, _ = source.clean()  # (N, 20, 52), (N,)
    if clean_x.shape[1:] != (fc.frames_per_segment, fc.n_features):
        raise ValueError(f"features have shape {clean_x.shape[1:]}, the feature settings give {(fc.frames_per_segment, fc.n_features)}")
    mean, std = normalization(clean_x, config.robust_normalization)
    data = source.fingerprint() | {"segments": int(clean_y.shape[0]), "classes": len(labels)}

    model = Encoder(mc)
    model.set_normalization(mean, std)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    history: list[dict[str, float]] = []
    start_epoch = 0

    ckpt = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if ckpt is not None and ckpt.exists():
        if not resume:
            raise FileExistsError(f"{ckpt} exists: resume it (--resume) or choose another output folder")
        state = _read_checkpoint(ckpt)
        _check_resumable(state, config, labels, data, ckpt)
        model.load_state_dict(state.get("train_weights") or state["model"])
        if ema is not None:
            ema.state = state["model"]
            ema.steps = int(state["ema_steps"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_states(state["rng"], rng, gen)
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        say("resuming %s at epoch %d of %d", ckpt, start_epoch + 1, config.epochs)
    elif resume:
        raise FileNotFoundError(f"nothing to resume: {ckpt or 'no output folder'} has no checkpoint")

    say(
        "training %s encoder (hidden %d, embedding %d) on %d segments, %d classes; %d epochs, batch %d, %d thread(s)",
        mc.variant, mc.hidden_size, mc.embedding_size, clean_y.shape[0], len(labels), config.epochs, config.batch_size, config.threads,
    )
    steps_per_epoch = max(1, math.ceil(clean_y.shape[0] / config.batch_size))
    total_steps = config.epochs * steps_per_epoch
    last_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(start_epoch, last_epoch):
        t0 = time.perf_counter()
        x_all, y_all, rec_all = source.epoch(rng)  # (N, 20, 52), (N,), (N,) this epoch's (augmented) segments
        t_feat = time.perf_counter() - t0
        batches = class_balanced_batches(y_all, rec_all, config, rng)
        model.train()
        sums = {"loss": 0.0, "triplets": 0.0, "semi_hard": 0.0, "importance": 0.0}
        last_note = time.perf_counter()
        for i, idx in enumerate(batches):
            lr = learning_rate(config, epoch * steps_per_epoch + min(i, steps_per_epoch - 1), total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = perturb_features(torch.from_numpy(x_all[idx]), model, config, gen)  # (B, 20, 52)
            y = torch.from_numpy(y_all[idx])  # (B,)
            g = torch.from_numpy(rec_all[idx]) if rec_all is not None else None  # (B,)
            loss, stats = batch_loss(model, x, y, g, config, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            sums["loss"] += float(loss.detach())
            for key in ("triplets", "semi_hard", "importance"):
                sums[key] += stats[key]
            if progress and time.perf_counter() - last_note > PROGRESS_EVERY_S:
                last_note = time.perf_counter()
                say("epoch %d/%d %s batch %d/%d loss %.4f", epoch + 1, config.epochs, progress_bar(i + 1, len(batches)), i + 1, len(batches), sums["loss"] / (i + 1))
        seconds = time.perf_counter() - t0
        n = len(batches)
        record = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / n,
            "triplets_per_batch": sums["triplets"] / n,
            "semi_hard": sums["semi_hard"] / n,
            "importance": sums["importance"] / n,
            "lr": lr,
            "segments": int(y_all.shape[0]),
            "seconds": seconds,
            "feature_seconds": t_feat,
        }
        history.append(record)
        if ckpt is not None:
            save_checkpoint(ckpt, {
                "format": CHECKPOINT_FORMAT,
                "version": __version__,
                "model": ema.state if ema is not None else model.state_dict(),  # the weights to use
                "train_weights": model.state_dict() if ema is not None else None,  # to resume from
                "ema_steps": ema.steps if ema is not None else 0,
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "model_config": to_dict(mc),
                "train_config": to_dict(config),
                "labels": list(labels),
                "features": fc.to_dict(),
                "normalization": {"mean": mean.tolist(), "std": std.tolist()},
                "rng": _rng_states(rng, gen),
                "history": history,
                "data": data,
            })
        eta = seconds * (config.epochs - epoch - 1)
        say(
            "epoch %d/%d %s loss %.4f triplets/batch %.0f semi-hard %.0f%% importance %.2f lr %.1e | %d seg in %.1f s (%.0f seg/s, features %.1f s) eta %s",
            epoch + 1, config.epochs, progress_bar(epoch + 1, config.epochs), record["loss"], record["triplets_per_batch"],
            100 * record["semi_hard"], record["importance"], lr, record["segments"], seconds, record["segments"] / seconds, t_feat,
            _format_seconds(eta),
        )
    if ema is not None:
        model.load_state_dict(ema.state)
    model.eval()
    return TrainedModel(model, config, labels, len(history), history, data, ckpt)


def fit_scenes(
    config: TrainConfig,
    audio: Sequence[np.ndarray],
    labels: np.ndarray,
    recordings: np.ndarray,
    label_names: Sequence[str],
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainedModel:
    """Train on scene waveforms (mono float32 at ``config.features.sample_rate``), augmented each epoch.

    labels: (n_scenes,) class ids into ``label_names``; recordings: (n_scenes,) recording ids (the
    augmentation mixes scenes of different recordings of a class).
    """
    return fit(config, SceneSource(config, audio, labels, recordings), label_names, out_dir, resume, progress, stop_after)


def fit_segments(
    config: TrainConfig,
    features: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    recordings: np.ndarray | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainedModel:
    """Train on fixed (N, 20, 52) features (e.g. ``SegmentSet.features``, ``.labels``, ``.recording``); no
    waveform augmentation. ``recordings`` (N,) lets batches balance recordings within a class."""
    return fit(config, SegmentSource(features, labels, recordings), label_names, out_dir, resume, progress, stop_after)


def train(
    config: TrainConfig,
    dataset,
    scene_indices: Sequence[int] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainedModel:
    """Train on a dataset's scenes (all of them by default); checkpoints go to ``out_dir``."""
    from edge_asc.training.datasets import load_scene_audio

    if dataset.sample_rate != config.features.sample_rate:
        raise ConfigError(f"features.sample_rate is {config.features.sample_rate} but the dataset was loaded at {dataset.sample_rate} Hz")
    indices = np.arange(len(dataset.scenes)) if scene_indices is None else np.asarray(scene_indices, dtype=np.int64)
    log.info("reading %d scenes", indices.shape[0])
    audio = load_scene_audio(dataset, indices)
    labels = dataset.scene_labels()[indices]
    recordings = dataset.scene_recordings()[indices]
    return fit_scenes(config, audio, labels, recordings, dataset.labels, out_dir, resume, progress, stop_after)
