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
* ``load_checkpoint(path)`` -> ``TrainedModel`` (run folder or checkpoint.pt; from training/checkpoint.py).
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edge_asc.config import ConfigError
from edge_asc.training.batches import SceneSource, SegmentSource, class_balanced_batches, normalization
from edge_asc.training.checkpoint import (
    CHECKPOINT_NAME,
    TrainedModel,
    check_resumable,
    checkpoint_history,
    checkpoint_state,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    set_rng_states,
)
from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig
from edge_asc.training.history import NO_IMPORTANCE, BatchStats, EpochTotals
from edge_asc.training.loss import audio_loss, mine_triplets, triplet_loss
from edge_asc.training.model import EncoderNet

log = logging.getLogger(__name__)

__all__ = [
    "AugmentConfig",
    "ModelConfig",
    "TrainConfig",
    "TrainedModel",
    "train",
    "fit",
    "fit_scenes",
    "fit_segments",
    "load_checkpoint",
    "CHECKPOINT_NAME",
]

PROGRESS_EVERY_S = 30.0  # an in-epoch progress line at most this often
BAR_WIDTH = 20


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))
    return config.lr


def batch_loss(
    model: EncoderNet, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, BatchStats]:
    """The variant's loss on one batch, and a few numbers to report."""
    out = model.encode(x)  # similarity (B, 2H), importance (B,) or None
    if model.config.has_classifier:
        loss = F.cross_entropy(model.logits(out.similarity), y)  # logits (B, C)
        return loss, BatchStats(triplets=0.0, semi_hard=0.0, importance=NO_IMPORTANCE)
    t = mine_triplets(out.similarity, y, config.margin, gen)
    if out.importance is not None:
        loss = audio_loss(out.similarity, out.importance, t, config.margin, config.alpha)
        imp = float(out.importance.detach().mean())
    else:
        loss = triplet_loss(out.similarity, t, config.margin)
        imp = NO_IMPORTANCE
    n = int(t.anchor.numel())
    return loss, BatchStats(triplets=float(n), semi_hard=float(t.semi_hard.float().mean()) if n else 0.0, importance=imp)


def progress_bar(done: int, total: int) -> str:
    filled = int(round(BAR_WIDTH * done / max(1, total)))
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"


def _format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _resume(ckpt: Path, trained: TrainedModel, optimizer: torch.optim.Optimizer, rng: np.random.Generator, gen: torch.Generator) -> None:
    """Load the checkpoint at ``ckpt`` into ``trained`` (weights, epoch, history), the optimiser and the generators."""
    state = read_checkpoint(ckpt)
    check_resumable(state, trained.config, trained.labels, trained.data, ckpt)
    trained.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_states(state["rng"], rng, gen)
    trained.history = checkpoint_history(state, ckpt)
    trained.epoch = int(state["epoch"])


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
    checkpoint then resumes exactly where it stopped. (Over 60 lines: the whole loop, top to bottom, in one
    place, as nanoGPT's train.py; its pieces are the small functions above.)
    """
    labels = tuple(label_names)
    say = log.info if progress else log.debug
    torch.set_num_threads(config.threads)
    rng = seed_everything(config.seed)  # augmentation and batches
    gen = torch.Generator().manual_seed(config.seed + 1)  # triplet mining

    # normalisation from the clean (un-augmented) training segments
    fc = config.features
    clean_x, clean_y = source.clean()  # (N, 20, 52), (N,)
    if clean_x.shape[1:] != (fc.frames_per_segment, fc.n_features):
        raise ValueError(f"features have shape {clean_x.shape[1:]}, the feature settings give {(fc.frames_per_segment, fc.n_features)}")
    mean, std = normalization(clean_x)  # (52,), (52,)
    data = source.fingerprint() | {"segments": int(clean_y.shape[0]), "classes": len(labels)}

    # the network's sizes follow from the features and the labels
    mc = config.model
    model = EncoderNet(mc, fc.n_features, fc.frames_per_segment, len(labels) if mc.has_classifier else 0)
    model.set_normalization(mean, std)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    trained = TrainedModel(model, config, labels, 0, [], data)

    ckpt = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if ckpt is not None and ckpt.exists():
        if not resume:
            raise FileExistsError(f"{ckpt} exists: resume it (--resume) or choose another output folder")
        _resume(ckpt, trained, optimizer, rng, gen)
        say("resuming %s at epoch %d of %d", ckpt, trained.epoch + 1, config.epochs)
    elif resume:
        raise FileNotFoundError(f"nothing to resume: {ckpt or 'no output folder'} has no checkpoint")

    say(
        "training %s encoder (hidden %d, embedding %d) on %d segments, %d classes; %d epochs, batch %d, %d thread(s)",
        mc.variant, mc.hidden_size, mc.embedding_size, clean_y.shape[0], len(labels), config.epochs, config.batch_size, config.threads,
    )
    steps_per_epoch = max(1, math.ceil(clean_y.shape[0] / config.batch_size))
    total_steps = config.epochs * steps_per_epoch
    last_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(trained.epoch, last_epoch):
        t0 = time.perf_counter()
        x_all, y_all = source.epoch(rng)  # (N, 20, 52), (N,) this epoch's (augmented) segments
        t_feat = time.perf_counter() - t0
        batches = class_balanced_batches(y_all, config, rng)  # [(B,) indices]
        model.train()
        totals = EpochTotals()
        last_note = time.perf_counter()
        for i, idx in enumerate(batches):
            lr = learning_rate(config, epoch * steps_per_epoch + min(i, steps_per_epoch - 1), total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = torch.from_numpy(x_all[idx])  # (B, 20, 52)
            y = torch.from_numpy(y_all[idx])  # (B,)
            loss, stats = batch_loss(model, x, y, config, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            totals.add(float(loss.detach()), stats)
            if progress and time.perf_counter() - last_note > PROGRESS_EVERY_S:
                last_note = time.perf_counter()
                say("epoch %d/%d %s batch %d/%d loss %.4f", epoch + 1, config.epochs, progress_bar(i + 1, len(batches)), i + 1, len(batches), totals.mean_loss)
        seconds = time.perf_counter() - t0
        record = totals.record(epoch + 1, lr, int(y_all.shape[0]), seconds, t_feat)
        trained.history.append(record)
        trained.epoch = epoch + 1
        if ckpt is not None:
            save_checkpoint(ckpt, checkpoint_state(trained, (mean, std), optimizer, rng, gen))
        say(
            "epoch %d/%d %s loss %.4f triplets/batch %.0f semi-hard %.0f%% importance %.2f lr %.1e | %d seg in %.1f s (%.0f seg/s, features %.1f s) eta %s",
            epoch + 1, config.epochs, progress_bar(epoch + 1, config.epochs), record.loss, record.triplets_per_batch,
            100 * record.semi_hard, record.importance, lr, record.segments, seconds, record.segments / seconds, t_feat,
            _format_seconds(seconds * (config.epochs - epoch - 1)),
        )
    model.eval()
    trained.path = ckpt
    return trained


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
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainedModel:
    """Train on fixed (N, 20, 52) features (e.g. ``SegmentSet.features`` and ``.labels``); no waveform augmentation."""
    return fit(config, SegmentSource(features, labels), label_names, out_dir, resume, progress, stop_after)


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

