"""What one epoch trains on: the segments (from scenes, augmented afresh each epoch, or fixed features),
the input normalisation, and the class-balanced batches that triplet mining draws from.

A source has ``clean()`` (the un-augmented segments: the normalisation is computed on them),
``epoch(epoch)`` (that epoch's segments) and ``fingerprint()`` (what it is, so a resumed run can refuse
other data); ``clean`` and ``epoch`` return ``(features, labels (N,) int64)`` where features is an
(N, 20, 52) float32 array or a ``SegmentStore`` (the same rows, gathered from memory-mapped cache entries
when indexed: ``x[idx]`` with idx (B,) gives (B, 20, 52) float32; the epoch is never concatenated in RAM).
``SceneSource.prepare(draws, rank, world_size)`` fills an on-disk feature cache with this rank's share of the
clean features and of those draws, in parallel (an in-memory cache is filled an epoch at a time instead).

Memory maps: an epoch's store maps one file per scene, and the source holds no store itself (the trainer drops
an epoch's store before it asks for the next), so a run holds about one map per training scene; Linux allows
``vm.max_map_count`` (65530 by default) per process (README: "Training at scale").
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable, Sequence

import numpy as np

from edge_asc.training.augment import Augmenter
from edge_asc.training.config import TrainConfig
from edge_asc.training.extract import Job, entries, fill
from edge_asc.training.feature_cache import FeatureCache, clean_key, draw_key
from edge_asc.training.scenes import SceneRef, scene_refs

__all__ = ["SceneRef", "scene_refs", "SegmentStore", "SceneSource", "SegmentSource", "Segments", "normalization", "batch_shape", "steps_per_epoch", "class_balanced_batches"]


class SegmentStore:
    """The rows of several (n_i, frames, features) arrays (memory-mapped cache entries) seen as one (N, ...) array.

    Indexing with a (B,) int array (or a boolean mask, a slice, an int) gathers those rows into a new array;
    nothing else is read.
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, parts: Sequence[np.ndarray], frames: int, n_features: int) -> None:
        self.parts = list(parts)
        self.offsets = np.concatenate([[0], np.cumsum([p.shape[0] for p in self.parts], dtype=np.int64)])  # (P + 1,)
        self.shape = (int(self.offsets[-1]), frames, n_features)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(self.shape[0])[idx]
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        rows = idx.reshape(-1).astype(np.int64)
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} segments")
        part = np.searchsorted(self.offsets, rows, side="right") - 1  # (B,)
        local = rows - self.offsets[part]  # (B,)
        out = np.empty((rows.shape[0],) + self.shape[1:], dtype=np.float32)
        for p in np.unique(part):
            sel = part == p
            out[sel] = self.parts[p][local[sel]]
        return out.reshape(idx.shape + self.shape[1:])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row in one array (reads the whole store: for small sets and tests)."""
        out = np.concatenate(self.parts) if self.parts else np.zeros((0,) + self.shape[1:], dtype=np.float32)
        return out if dtype is None else out.astype(dtype)


Segments = tuple[np.ndarray | SegmentStore, np.ndarray]  # (N, 20, 52) float32 features, (N,) int64 labels


class SceneSource:
    """Scenes (files and cuts, or waveforms); epoch e trains on augmentation draw e of every scene, from the cache.

    ``scenes`` are SceneRefs (``scene_refs(dataset, indices)``, ``SceneRef.from_waveform``); plain waveforms
    are accepted too (taken as in-memory scenes at the model's rate). Scenes shorter than one segment, and
    scenes whose audio cannot be decoded, are left out. ``cache`` defaults to an in-memory one.
    """

    def __init__(self, config: TrainConfig, scenes: Sequence[SceneRef | np.ndarray], labels: np.ndarray, recordings: np.ndarray,
                 cache: FeatureCache | None = None, workers: int = 1) -> None:
        fc = config.features
        refs = [s if isinstance(s, SceneRef) else SceneRef.from_waveform(s, fc.sample_rate) for s in scenes]
        keep = [i for i, s in enumerate(refs) if s.n_samples >= fc.segment_samples]
        if not keep:
            raise ValueError("no training scene is at least one segment long")
        self.config = config
        self.scenes = [refs[i] for i in keep]
        self.labels = np.asarray(labels, dtype=np.int64)[keep]
        self.recordings = np.asarray(recordings, dtype=np.int64)[keep]  # the augmentation mixes across recordings
        self.cache = cache if cache is not None else FeatureCache.disabled()
        self.workers = max(1, int(workers))
        self.augmenter = Augmenter(config.augment, fc.sample_rate, fc.segment_samples)
        self._usable: np.ndarray | None = None  # (n,) bool: the scene has at least one clean segment
        self._held: list[str] = []  # in-memory cache: the keys of the last draw computed (dropped at the next)

    def _entries(self, jobs: list[Job], what: str) -> list[np.ndarray]:
        """The cache entries of ``jobs``, computing the missing ones (an undecodable scene: no rows)."""
        return entries(jobs, self.cache, self.config.features, self.config.augment, self.workers, what)

    def _clean_jobs(self) -> list[Job]:
        return [Job(clean_key(s.key, self.config.features), s) for s in self.scenes]

    def usable(self) -> np.ndarray:
        """(n,) bool: scenes with at least one clean segment (the others take no part, as partners neither)."""
        if self._usable is None:
            self.clean()
        return self._usable

    def partners(self, draw: int) -> np.ndarray:
        """(n,) the mixing partner of every scene in draw ``draw`` (-1: none), chosen among the usable scenes."""
        use = np.flatnonzero(self.usable())
        sub = self.augmenter.draw_partners(self.labels[use], self.recordings[use], self.config.seed, draw)  # (m,)
        partner = np.full(len(self.scenes), -1, dtype=np.int64)
        partner[use] = np.where(sub >= 0, use[np.maximum(sub, 0)], -1)
        return partner

    def _draw_jobs(self, draw: int) -> list[Job]:
        cfg = self.config
        partner = self.partners(draw)
        jobs = []
        for i in np.flatnonzero(self.usable()):
            s, p = self.scenes[i], (self.scenes[partner[i]] if partner[i] >= 0 else None)
            key = draw_key(s.key, p.key if p is not None else None, cfg.features, cfg.augment, cfg.seed, draw)
            jobs.append(Job(key, s, p, draw, cfg.seed))
        return jobs

    def prepare(self, draws: range, rank: int = 0, world_size: int = 1, wait: Callable[[], None] = lambda: None) -> None:
        """Compute rank ``rank``'s share (every ``world_size``-th job) of the clean features, then (``wait``: until
        every rank is done, as the mixing partners need every scene's clean entry) of the augmentation draws
        ``draws`` into an on-disk cache, in parallel. Every rank calls it, and waits again before reading.

        An in-memory cache (--no-cache) is not filled ahead: each rank computes the clean features when first
        asked and one draw per epoch (``epoch``), so memory holds the clean features and a single draw."""
        if not self.cache.on_disk:
            return
        cfg = self.config
        share = f" (share {rank + 1} of {world_size})" if world_size > 1 else ""
        fill(self._clean_jobs()[rank::world_size], self.cache, cfg.features, cfg.augment, self.workers,
             f"extracting {len(self.scenes)} scenes{share}")
        wait()
        if cfg.augment.enabled and len(draws):
            jobs = [j for d in draws for j in self._draw_jobs(d)][rank::world_size]
            fill(jobs, self.cache, cfg.features, cfg.augment, self.workers,
                 f"augmenting {len(self.scenes)} scenes x {len(draws)} draws{share}")

    def _segments(self, parts: list[np.ndarray], labels: np.ndarray) -> Segments:
        fc = self.config.features
        counts = np.array([p.shape[0] for p in parts], dtype=np.int64)
        return SegmentStore(parts, fc.frames_per_segment, fc.n_features), np.repeat(labels, counts)

    def clean(self) -> Segments:
        """Every scene's clean segments (computed now when not cached). Not kept by the source: a store over an
        on-disk cache maps a file per scene, and is dropped by the caller once read."""
        parts = self._entries(self._clean_jobs(), f"extracting {len(self.scenes)} scenes")
        self._usable = np.array([p.shape[0] > 0 for p in parts], dtype=bool)
        return self._segments(parts, self.labels)

    def epoch(self, epoch: int) -> Segments:
        """Draw ``epoch`` of every usable scene (computed now when not cached); clean() when augmentation is off.

        With an in-memory cache, the draw asked for before this one is dropped from it (its arrays live on only
        in the store the caller still holds), so memory does not grow with the epochs."""
        if not self.config.augment.enabled:
            return self.clean()
        jobs = self._draw_jobs(epoch)
        parts = self._entries(jobs, f"augmenting {len(self.scenes)} scenes (draw {epoch})")
        if not self.cache.on_disk:
            keep = {j.key for j in jobs}
            self.cache.forget([k for k in self._held if k not in keep])
            self._held = list(keep)
        return self._segments(parts, self.labels[self.usable()])

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256(self.labels.tobytes())
        for s in self.scenes:
            h.update(bytes.fromhex(s.key))  # the content: file bytes and cut, or the samples
        return {"kind": "scenes", "scenes": len(self.scenes), "sha256": h.hexdigest()}


class SegmentSource:
    """Fixed segment features (no waveform augmentation)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray) -> None:
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.features.ndim != 3 or self.features.shape[0] != self.labels.shape[0]:
            raise ValueError(f"need (N, frames, features) features and (N,) labels, got {self.features.shape} and {self.labels.shape}")

    def clean(self) -> Segments:
        return self.features, self.labels

    def prepare(self, draws: range, rank: int = 0, world_size: int = 1, wait: Callable[[], None] = lambda: None) -> None:
        """Fixed features: nothing to compute."""

    def epoch(self, epoch: int) -> Segments:
        return self.features, self.labels

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256(self.labels.tobytes())
        h.update(self.features[:: max(1, self.features.shape[0] // 256)].tobytes())
        return {"kind": "segments", "segments": int(self.labels.shape[0]), "sha256": h.hexdigest()}


def normalization(features: np.ndarray | SegmentStore) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over every window of the (clean) training segments: (F,), (F,) float32.

    A SegmentStore is read one entry at a time (two passes: the mean, then the squared deviations)."""
    if not isinstance(features, SegmentStore):
        flat = features.reshape(-1, features.shape[-1]).astype(np.float64)  # (N * 20, 52)
        return flat.mean(axis=0).astype(np.float32), flat.std(axis=0).astype(np.float32)
    n = max(1, features.shape[0] * features.shape[1])
    total = sum((np.asarray(p, dtype=np.float64).reshape(-1, features.shape[2]).sum(axis=0) for p in features.parts), np.zeros(features.shape[2]))
    mean = total / n  # (F,)
    sq = sum((((np.asarray(p, dtype=np.float64).reshape(-1, features.shape[2]) - mean) ** 2).sum(axis=0) for p in features.parts), np.zeros(features.shape[2]))
    return mean.astype(np.float32), np.sqrt(sq / n).astype(np.float32)


def batch_shape(labels: np.ndarray, config: TrainConfig) -> tuple[int, int]:
    """(P, K) of the class-balanced batches over ``labels``: P classes (of those with >= 2 items) x K items each,
    K = batch_size // P; a batch holds P * K items (up to P - 1 fewer than batch_size)."""
    classes, counts = np.unique(labels, return_counts=True)
    eligible = int(np.sum(counts >= 2))
    if eligible < 2:
        raise ValueError("training needs at least two classes with two or more segments each")
    p = min(config.classes_per_batch, eligible)
    return p, config.batch_size // p


def steps_per_epoch(segments: int, batch_items: int, world_size: int) -> int:
    """Batches each rank trains on per epoch (``batch_items``: segments in a batch, P x K): about ``segments``
    in all over the ranks."""
    return max(1, math.ceil(segments / (batch_items * world_size)))


def class_balanced_batches(labels: np.ndarray, config: TrainConfig, rng: np.random.Generator, n_batches: int | None = None) -> list[np.ndarray]:
    """``n_batches`` batches (default: len(labels) / (P * K), rounded up), each of P classes x K items (batch_shape).

    Classes are drawn uniformly among those with >= 2 items (small classes are not drowned out, and every
    anchor has a positive); within a class, items are drawn uniformly (with replacement). The trainer gives
    ``n_batches`` (its steps per epoch), so every rank trains as many steps in every epoch. (With several
    datasets, drawing a class's sources equally often, then an item, measured no better on ambient13 +
    debian-ambient than this: bench/generalise.py, README "Does more data help?".)
    """
    p, k = batch_shape(labels, config)
    classes, counts = np.unique(labels, return_counts=True)
    members = [np.flatnonzero(labels == c) for c in classes[counts >= 2]]  # per class: its items, ascending
    n_batches = max(1, math.ceil(labels.shape[0] / (p * k))) if n_batches is None else n_batches
    batches = []
    for _ in range(n_batches):
        parts = [members[c][rng.integers(members[c].shape[0], size=k)] for c in rng.choice(len(members), size=p, replace=False)]
        batches.append(np.concatenate(parts))  # (P * K,)
    return batches
