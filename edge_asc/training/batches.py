"""What one epoch trains on: the segments (from scene waveforms, augmented afresh, or fixed features),
the input normalisation, and the class-balanced batches that triplet mining draws from.

A source has ``clean()`` (the un-augmented segments: the normalisation is computed on them),
``epoch(rng)`` (this epoch's segments) and ``fingerprint()`` (what it is, so a resumed run can refuse
other data); ``clean`` and ``epoch`` return ``(features (N, 20, 52) float32, labels (N,) int64)``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

import numpy as np

from edge_asc.dsp.features import FeatureExtractor
from edge_asc.training.augment import Augmenter
from edge_asc.training.config import TrainConfig

Segments = tuple[np.ndarray, np.ndarray]  # (N, 20, 52) float32 features, (N,) int64 labels


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
        self.recordings = np.asarray(recordings, dtype=np.int64)[keep]  # the augmentation mixes across recordings
        self._clean: Segments | None = None

    def _features(self, audio: list[np.ndarray]) -> Segments:
        """Features of every segment of each scene in ``audio`` (each scene its own stream)."""
        feats = [self.extractor.signal_features(x) for x in audio]  # [(n_i, 20, 52)]
        counts = np.array([f.shape[0] for f in feats])
        return np.concatenate(feats), np.repeat(self.labels, counts)  # (N, 20, 52), (N,)

    def clean(self) -> Segments:
        if self._clean is None:
            self._clean = self._features(self.audio)
        return self._clean

    def epoch(self, rng: np.random.Generator) -> Segments:
        if not self.augmenter.config.enabled:
            return self.clean()
        return self._features(self.augmenter.epoch(self.audio, self.labels, self.recordings, rng))

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256(self.labels.tobytes())
        h.update(np.array([x.shape[0] for x in self.audio], dtype=np.int64).tobytes())
        for x in self.audio:
            h.update(x[:: max(1, x.shape[0] // 64)].tobytes())  # a cheap sample of the audio itself
        return {"kind": "scenes", "scenes": len(self.audio), "sha256": h.hexdigest()}


class SegmentSource:
    """Fixed segment features (no waveform augmentation)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray) -> None:
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.features.ndim != 3 or self.features.shape[0] != self.labels.shape[0]:
            raise ValueError(f"need (N, frames, features) features and (N,) labels, got {self.features.shape} and {self.labels.shape}")

    def clean(self) -> Segments:
        return self.features, self.labels

    def epoch(self, rng: np.random.Generator) -> Segments:
        return self.features, self.labels

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256(self.labels.tobytes())
        h.update(self.features[:: max(1, self.features.shape[0] // 256)].tobytes())
        return {"kind": "segments", "segments": int(self.labels.shape[0]), "sha256": h.hexdigest()}


def normalization(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over every window of the (clean) training segments: (F,), (F,) float32."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)  # (N * 20, 52)
    return flat.mean(axis=0).astype(np.float32), flat.std(axis=0).astype(np.float32)


def class_balanced_batches(labels: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """About len(labels) / batch_size batches, each of P classes x K items (P = classes_per_batch).

    Classes are drawn uniformly among those with >= 2 items (small classes are not drowned out, and every
    anchor has a positive); within a class, items are drawn uniformly (with replacement).
    """
    classes, counts = np.unique(labels, return_counts=True)
    classes = classes[counts >= 2]
    if classes.shape[0] < 2:
        raise ValueError("training needs at least two classes with two or more segments each")
    members = [np.flatnonzero(labels == c) for c in classes]  # per class: its items, ascending
    p = min(config.classes_per_batch, classes.shape[0])
    k = config.batch_size // p
    n_batches = max(1, math.ceil(labels.shape[0] / (p * k)))
    batches = []
    for _ in range(n_batches):
        parts = []
        for c in rng.choice(classes.shape[0], size=p, replace=False):
            parts.append(members[c][rng.integers(members[c].shape[0], size=k)])  # (K,) items
            # Drawn and not used: seeded runs stay identical to those of earlier versions, which drew an
            # item within a recording here (their option balance_recordings; measured no better, removed).
            rng.random(k)
        batches.append(np.concatenate(parts))  # (P * K,)
    return batches
