"""Training the encoder: labelled scenes -> features (augmented each epoch) -> triplet batches -> Adam.

The loop (``fit``) reads top to bottom: the world (one process, or one rank of a torchrun), a checkpoint
to resume from, the feature cache made ready (each rank its share; they wait for each other), normalisation from the clean
training features, model and optimiser (in DistributedDataParallel with several ranks), then per epoch:
the epoch's features (draw ``epoch`` of the augmentation, from the cache), this rank's class-balanced
batches, semi-hard triplets mined in each batch, a step (DDP averages the gradients over the ranks), and a
complete checkpoint written atomically by rank 0.

Randomness (a deliberate change from 0.1.0, whose single generator was consumed in sequence): every random
choice is a pure function of (seed, epoch, rank) (training/streams.py): epoch e trains on augmentation draw
e; rank r's batches of epoch e come from ``stream_rng(seed, BATCH_STREAM, e, r)``, its triplet mining from a
torch.Generator seeded from (seed, MINING_STREAM, e, r), its dropout from (seed, DROPOUT_STREAM, e, r). The initial weights come from ``torch.manual_seed(seed)`` (DDP broadcasts rank 0's). So a
checkpoint needs no generator state: a resumed run is exactly the uninterrupted one, and a seeded run is
reproducible for a given world size. A batch holds P x K segments (P classes, K = batch_size // P: batches.
batch_shape); steps per epoch = ceil(N_clean / (P * K * world_size)), the same on every rank and in every epoch
(an epoch's segments may be fewer than the clean ones: the time shift), so an epoch sees about N segments over
all ranks and the cosine schedule runs over exactly epochs x steps global steps.

Memory maps: the epoch before is dropped before the next is asked for, so one epoch's store (a map per scene)
is held at a time (batches.py; README "Training at scale").

Entry points:
* ``train(config, dataset, scene_indices, out_dir)`` - a dataset's scenes, read from their files by the
  feature cache's workers (the CLI).
* ``fit_scenes(config, audio, labels, recordings, label_names)`` - scene waveforms in memory, augmented
  each epoch (tests, the fixture script).
* ``fit_segments(config, features, labels, label_names)`` - fixed (N, 20, 52) features, no waveform
  augmentation.
* ``load_checkpoint(path)`` -> ``TrainedModel`` (run folder or checkpoint.pt; from training/checkpoint.py).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edge_asc.config import ConfigError
from edge_asc.training import distributed
from edge_asc.training.batches import SceneSource, SegmentSource, batch_shape, class_balanced_batches, normalization, steps_per_epoch
from edge_asc.training.checkpoint import (
    CHECKPOINT_NAME,
    TrainedModel,
    check_data,
    check_settings,
    checkpoint_history,
    checkpoint_state,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig
from edge_asc.training.feature_cache import FeatureCache
from edge_asc.training.history import NO_IMPORTANCE, BatchStats, EpochTotals
from edge_asc.training.loss import audio_loss, mine_triplets, triplet_loss
from edge_asc.training.model import EncoderNet
from edge_asc.training.scenes import SceneRef, scene_refs
from edge_asc.training.streams import BATCH_STREAM, DROPOUT_STREAM, MINING_STREAM, stream_rng, stream_seed

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
    "steps_per_epoch",
]

PROGRESS_EVERY_S = 30.0  # an in-epoch progress line at most this often
BAR_WIDTH = 20


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))
    return config.lr


def epoch_generators(seed: int, epoch: int, rank: int, device: torch.device) -> tuple[np.random.Generator, torch.Generator]:
    """Rank ``rank``'s generators for epoch ``epoch``: batches (numpy) and triplet mining (torch); also seeds
    torch's global generator (dropout). Pure functions of (seed, epoch, rank): nothing to save or restore."""
    torch.manual_seed(stream_seed(seed, DROPOUT_STREAM, epoch, rank))
    mining = torch.Generator(device=device).manual_seed(stream_seed(seed, MINING_STREAM, epoch, rank))
    return stream_rng(seed, BATCH_STREAM, epoch, rank), mining


class LossInputs(torch.nn.Module):
    """The network's training forward pass as one ``forward``: (B, 20, 52) -> similarity (B, 2H), importance
    (B,) or None, logits (B, C) or None. DistributedDataParallel synchronises the gradients of what goes
    through ``forward``, and the loss needs more than ``EncoderNet.forward`` (the exported graph) gives."""

    def __init__(self, net: EncoderNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        out = self.net.encode(x)
        logits = self.net.logits(out.similarity) if self.net.config.has_classifier else None
        return out.similarity, out.importance, logits


def batch_loss(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, BatchStats]:
    """The variant's loss on one batch (``net``: LossInputs, possibly in DDP), and a few numbers to report."""
    similarity, importance, logits = net(x)
    if logits is not None:
        return F.cross_entropy(logits, y), BatchStats(triplets=0.0, semi_hard=0.0, importance=NO_IMPORTANCE)
    t = mine_triplets(similarity, y, config.margin, gen)
    if importance is not None:
        loss = audio_loss(similarity, importance, t, config.margin, config.alpha)
        imp = float(importance.detach().mean())
    else:
        loss = triplet_loss(similarity, t, config.margin)
        imp = NO_IMPORTANCE
    n = int(t.anchor.numel())
    return loss, BatchStats(triplets=float(n), semi_hard=float(t.semi_hard.float().mean()) if n else 0.0, importance=imp)


def reduced(world: distributed.World, totals: EpochTotals) -> EpochTotals:
    """The epoch's totals summed over the ranks (the same totals with one rank)."""
    out = EpochTotals()
    sums = world.sum([totals.batches, totals.loss, totals.triplets, totals.semi_hard, totals.importance])
    out.loss, out.triplets, out.semi_hard, out.importance = sums[1:]
    out.batches = int(round(sums[0]))
    return out


def progress_bar(done: int, total: int) -> str:
    filled = int(round(BAR_WIDTH * done / max(1, total)))
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"


def _format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _checkpoint_to_resume(ckpt: Path | None, resume: bool, config: TrainConfig, labels: tuple[str, ...]) -> dict[str, Any] | None:
    """The checkpoint state this run continues (its settings checked), or None for a new run."""
    if ckpt is not None and ckpt.exists():
        if not resume:
            raise FileExistsError(f"{ckpt} exists: resume it (--resume) or choose another output folder")
        state = read_checkpoint(ckpt)
        check_settings(state, config, labels, ckpt)
        return state
    if resume:
        raise FileNotFoundError(f"nothing to resume: {ckpt or 'no output folder'} has no checkpoint")
    return None


def _resume(state: dict[str, Any], ckpt: Path, trained: TrainedModel, optimizer: torch.optim.Optimizer, world_size: int) -> None:
    """Load a checkpoint's weights, optimiser state, epoch and history into ``trained`` and ``optimizer``."""
    check_data(state, trained.data, ckpt)
    trained.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    trained.history = checkpoint_history(state, ckpt)
    trained.epoch = int(state["epoch"])
    if "rng" in state:  # 0.1.0 saved its generators' states; this version's streams need none
        log.warning("%s was written by version %s: the run continues under this version's counter-based randomness, "
                    "not as that version would have continued it", ckpt, state.get("version", "?"))
    saved_size = int(state.get("world_size", 1))
    if saved_size != world_size:
        log.warning("%s was trained on %d rank(s), this run has %d: it continues, but is no longer the same as an "
                    "uninterrupted run", ckpt, saved_size, world_size)


def fit(
    config: TrainConfig,
    source: SceneSource | SegmentSource,
    label_names: Sequence[str],
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    device: str = "cpu",
) -> TrainedModel:
    """Train an encoder on ``source``; with ``out_dir``, write ``checkpoint.pt`` there after every epoch.

    ``stop_after`` ends this call after that many epochs in all (as an interruption would); the
    checkpoint then resumes exactly where it stopped. Under torchrun (WORLD_SIZE > 1) this process is one
    rank of a DistributedDataParallel run (training/distributed.py); ``device``: cpu, cuda or auto. (Over
    60 lines: the whole loop, top to bottom, in one place, as nanoGPT's train.py; its pieces are the small
    functions above.)
    """
    labels = tuple(label_names)
    world = distributed.join(device)
    say = log.info if progress else log.debug
    torch.set_num_threads(config.threads)
    ckpt = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    state = _checkpoint_to_resume(ckpt, resume, config, labels)
    first_epoch = int(state["epoch"]) if state is not None else 0
    last_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)

    # the features this run reads: each rank fills its share of the cache, then every rank reads every file
    source.prepare(range(first_epoch, last_epoch), world.rank, world.size, world.wait_for_all)
    world.wait_for_all()

    # normalisation from the clean (un-augmented) training segments
    fc = config.features
    clean_x, clean_y = source.clean()  # (N, 20, 52), (N,)
    if clean_x.shape[1:] != (fc.frames_per_segment, fc.n_features):
        raise ValueError(f"features have shape {clean_x.shape[1:]}, the feature settings give {(fc.frames_per_segment, fc.n_features)}")
    mean, std = normalization(clean_x)  # (52,), (52,)
    del clean_x  # a store over the cache maps a file per scene: one store at a time
    data = source.fingerprint() | {"segments": int(clean_y.shape[0]), "classes": len(labels)}

    # the network's sizes follow from the features and the labels; the initial weights from the seed
    mc = config.model
    torch.manual_seed(config.seed)
    model = EncoderNet(mc, fc.n_features, fc.frames_per_segment, len(labels) if mc.has_classifier else 0)
    model.set_normalization(mean, std)
    model.to(world.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    trained = TrainedModel(model, config, labels, 0, [], data, world_size=world.size)
    if state is not None:
        _resume(state, ckpt, trained, optimizer, world.size)
        say("resuming %s at epoch %d of %d", ckpt, trained.epoch + 1, config.epochs)
    net = world.wrap(LossInputs(model))  # DistributedDataParallel with several ranks

    p, k = batch_shape(clean_y, config)
    steps = steps_per_epoch(clean_y.shape[0], p * k, world.size)
    total_steps = config.epochs * steps
    say(
        "training %s encoder (hidden %d, embedding %d) on %d segments, %d classes; %d epochs, batch %d, %d rank(s) x %d thread(s) on %s",
        mc.variant, mc.hidden_size, mc.embedding_size, clean_y.shape[0], len(labels), config.epochs, config.batch_size,
        world.size, config.threads, world.device,
    )
    for epoch in range(trained.epoch, last_epoch):
        t0 = time.perf_counter()
        x_all = None  # the epoch before's store (its memory maps) goes before this one is made
        x_all, y_all = source.epoch(epoch)  # (N, 20, 52), (N,) this epoch's (augmented) segments
        t_feat = time.perf_counter() - t0
        rng, gen = epoch_generators(config.seed, epoch, world.rank, world.device)
        batches = class_balanced_batches(y_all, config, rng, steps)  # steps x (P * K,) indices, this rank's
        net.train()
        totals = EpochTotals()
        last_note = time.perf_counter()
        for i, idx in enumerate(batches):
            lr = learning_rate(config, epoch * steps + i, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = torch.from_numpy(np.ascontiguousarray(x_all[idx], dtype=np.float32)).to(world.device)  # (B, 20, 52)
            y = torch.from_numpy(np.asarray(y_all[idx], dtype=np.int64)).to(world.device)  # (B,)
            loss, stats = batch_loss(net, x, y, config, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP: gradients averaged over the ranks here
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            totals.add(float(loss.detach()), stats)
            if progress and time.perf_counter() - last_note > PROGRESS_EVERY_S:
                last_note = time.perf_counter()
                say("epoch %d/%d %s batch %d/%d loss %.4f", epoch + 1, config.epochs, progress_bar(i + 1, len(batches)), i + 1, len(batches), totals.mean_loss)
        seconds = time.perf_counter() - t0
        record = reduced(world, totals).record(epoch + 1, lr, int(y_all.shape[0]), seconds, t_feat)
        trained.history.append(record)
        trained.epoch = epoch + 1
        if ckpt is not None and world.is_main:
            save_checkpoint(ckpt, checkpoint_state(trained, (mean, std), optimizer))
        say(
            "epoch %d/%d %s loss %.4f triplets/batch %.0f semi-hard %.0f%% importance %.2f lr %.1e | %d seg in %.1f s (%.0f seg/s, features %.1f s) eta %s",
            epoch + 1, config.epochs, progress_bar(epoch + 1, config.epochs), record.loss, record.triplets_per_batch,
            100 * record.semi_hard, record.importance, lr, record.segments, seconds, record.segments / seconds, t_feat,
            _format_seconds(seconds * (config.epochs - epoch - 1)),
        )
    world.barrier()  # the last checkpoint is written before any rank moves on
    model.to("cpu").eval()
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
    *,
    cache: FeatureCache | None = None,
    workers: int = 1,
) -> TrainedModel:
    """Train on scene waveforms (mono float32 at ``config.features.sample_rate``), augmented each epoch.

    labels: (n_scenes,) class ids into ``label_names``; recordings: (n_scenes,) recording ids (the
    augmentation mixes scenes of different recordings of a class). ``cache``: where features are kept
    (default: none, computed in memory); ``workers``: extraction processes.
    """
    refs = [SceneRef.from_waveform(x, config.features.sample_rate) for x in audio]
    source = SceneSource(config, refs, labels, recordings, cache or FeatureCache.disabled(), workers)
    return fit(config, source, label_names, out_dir, resume, progress, stop_after)


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
    *,
    cache: FeatureCache | None = None,
    workers: int = 1,
    device: str = "cpu",
) -> TrainedModel:
    """Train on a dataset's scenes (all of them by default); checkpoints go to ``out_dir``.

    The scenes are read from their files by the extraction ``workers`` (processes), not loaded here;
    ``cache``: the feature cache (default: none); ``device``: cpu, cuda or auto."""
    if dataset.sample_rate != config.features.sample_rate:
        raise ConfigError(f"features.sample_rate is {config.features.sample_rate} but the dataset was loaded at {dataset.sample_rate} Hz")
    indices = np.arange(len(dataset.scenes)) if scene_indices is None else np.asarray(scene_indices, dtype=np.int64)
    labels = dataset.scene_labels()[indices]
    recordings = dataset.scene_recordings()[indices]
    source = SceneSource(config, scene_refs(dataset, indices), labels, recordings, cache or FeatureCache.disabled(), workers)
    return fit(config, source, dataset.labels, out_dir, resume, progress, stop_after, device)
