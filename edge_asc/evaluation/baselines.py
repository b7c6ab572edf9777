"""Baselines for the evaluation: a no-learning nearest neighbour on segment statistics, and the softmax encoder.

No learning: each 300 ms segment (20 windows x 52 features) becomes the mean and the standard deviation of
each feature over its windows (104 values), standardised with the training side's per-dimension mean and
standard deviation, and is classified by its exact nearest labelled training segments (squared L2, brute
force; no approximation, so the baseline pays no recall penalty).

The softmax baseline (the same encoder trained with a linear classifier head and cross-entropy,
``variant="softmax"`` of the trainer) is trained and scored by edge_asc.evaluation.evaluate: with its own head
(``TrainedModel.predict_proba``) and with 1-NN on its embedding through the same ONNX + index path as the
other variants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

STD_FLOOR = 1e-6  # smallest standard deviation used when standardising
QUERY_BLOCK = 1024  # test segments per distance block (bounds memory to QUERY_BLOCK x n_train floats)


def segment_statistics(features: np.ndarray) -> np.ndarray:
    """(N, T, F) window features -> (N, 2F) float32: per-feature mean over the T windows, then std."""
    if features.ndim != 3:
        raise ValueError(f"segment_statistics needs (N, T, F) features, got shape {features.shape}")
    x = features.astype(np.float64, copy=False)
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1).astype(np.float32)  # (N, 2F)


@dataclass(frozen=True)
class Standardiser:
    """Per-dimension (x - mean) / std with statistics of the training side only."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardiser":
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"Standardiser.fit needs a non-empty (N, D) array, got shape {x.shape}")
        x = x.astype(np.float64, copy=False)
        return cls(x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)  # (N, D)


def exact_neighbours(train: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest training rows of each query row (squared L2).

    Returns (indices (B, k) int64, squared distances (B, k) float32), nearest first; among the k found,
    equal distances are ordered by training index.
    """
    if train.ndim != 2 or query.ndim != 2 or train.shape[1] != query.shape[1]:
        raise ValueError(f"need (N, D) train and (B, D) query arrays, got {train.shape} and {query.shape}")
    if not 1 <= k <= train.shape[0]:
        raise ValueError(f"k must be in [1, {train.shape[0]}], got {k}")
    t = train.astype(np.float64, copy=False)
    t_sq = np.einsum("nd,nd->n", t, t)  # (N,)
    idx = np.empty((query.shape[0], k), dtype=np.int64)
    dist = np.empty((query.shape[0], k), dtype=np.float32)
    for start in range(0, query.shape[0], QUERY_BLOCK):
        q = query[start : start + QUERY_BLOCK].astype(np.float64, copy=False)  # (b, D)
        d = np.einsum("bd,bd->b", q, q)[:, None] - 2.0 * (q @ t.T) + t_sq[None, :]  # (b, N)
        d = np.maximum(d, 0.0)
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(d.shape[1]), (d.shape[0], 1))
        part_d = np.take_along_axis(d, part, axis=1)  # (b, k) unordered
        order = np.take_along_axis(part, np.lexsort((part, part_d), axis=1), axis=1)  # (b, k) by distance, then index
        idx[start : start + q.shape[0]] = order
        dist[start : start + q.shape[0]] = np.take_along_axis(d, order, axis=1)
    return idx, dist


@dataclass(frozen=True)
class NoLearningBaseline:
    """Standardised segment statistics + exact nearest neighbours over the training segments."""

    standardiser: Standardiser
    train_points: np.ndarray  # (N, 2F) standardised statistics of the training segments
    train_labels: np.ndarray  # (N,) int64

    @classmethod
    def fit(cls, train_features: np.ndarray, train_labels: np.ndarray) -> "NoLearningBaseline":
        stats = segment_statistics(train_features)  # (N, 2F)
        standardiser = Standardiser.fit(stats)
        return cls(standardiser, standardiser.apply(stats), np.asarray(train_labels, dtype=np.int64))

    def neighbours(self, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, T, F) -> labels (B, k) int64 and squared distances (B, k) of the k nearest training segments."""
        idx, dist = exact_neighbours(self.train_points, self.standardiser.apply(segment_statistics(features)), k)
        return self.train_labels[idx], dist
