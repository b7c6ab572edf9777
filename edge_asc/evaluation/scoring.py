"""Scoring a fold's test scenes: segment decisions from neighbours, scene decisions (first-k, all segments), accuracy.

Votes are the daemon's (``edge_asc.runtime.decision.vote`` with its default tie-break ``distance``): equal votes go to the
label whose votes have the smallest summed distance, then to the earlier label. A scene shorter than k
segments votes over all of its segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from edge_asc.runtime.decision import vote
from edge_asc.training.datasets import SegmentSet

HEAD_RULE = "head"  # decision rule of the softmax head (no neighbours)


def rule_key(neighbours: int) -> str:
    """Key of the segment rule 'vote over the n nearest neighbours' (``nn1``, ``nn5``)."""
    return f"nn{neighbours}"


def first_rule(neighbours: Sequence[int]) -> str:
    """The rule of the first neighbour count: the one the headline, the per-class table and the class study use."""
    return rule_key(neighbours[0])


def rule_title(rule: str) -> str:
    """How a rule is named in a report: ``1-NN``, ``own softmax head``."""
    return "own softmax head" if rule == HEAD_RULE else f"{rule[2:]}-NN"


def neighbour_vote(neighbour_labels: np.ndarray, neighbour_distances: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's class from its n nearest neighbours (nearest first); returns (labels (B,), distances (B,)).

    n = 1 is the paper's rule: the nearest neighbour's label and distance. For n > 1 the segment takes the
    vote of its neighbours (the same vote as a scene decision), and its distance is that of its nearest
    neighbour of the winning label (what a later scene vote breaks ties with).
    """
    if neighbour_labels.ndim != 2 or neighbour_labels.shape[1] < 1 or neighbour_distances.shape != neighbour_labels.shape:
        raise ValueError(f"need (B, n >= 1) neighbour labels and distances, got {neighbour_labels.shape} and {neighbour_distances.shape}")
    labels = neighbour_labels.astype(np.int64)
    dists = neighbour_distances.astype(np.float64)
    if labels.shape[1] == 1:
        return labels[:, 0], dists[:, 0]
    won = np.array([vote(l, d, n_classes)[0] for l, d in zip(labels, dists)], dtype=np.int64)  # (B,)
    nearest_of_winner = np.where(labels == won[:, None], dists, np.inf).min(axis=1)  # (B,)
    return won, nearest_of_winner


@dataclass(frozen=True, eq=False)
class SceneDecisions:
    """The decisions on a fold's test scenes under one segment rule."""

    scene: np.ndarray  # (S,) int64 scene index (into Dataset.scenes)
    truth: np.ndarray  # (S,) int64 true class
    first_k: np.ndarray  # (S, K) int64: column k-1 is the vote over the scene's first k segments
    all: np.ndarray  # (S,) int64 vote over all of the scene's segments
    n_segments: np.ndarray  # (S,) int64 segments in the scene

    @property
    def k_max(self) -> int:
        return int(self.first_k.shape[1])

    @property
    def n_scenes(self) -> int:
        return int(self.scene.shape[0])

    @property
    def first(self) -> np.ndarray:
        """(S,) the first-segment decisions."""
        return self.first_k[:, 0]

    def first_k_accuracy(self) -> np.ndarray:
        """(K,) share of scenes whose first-k decision is right, k = 1..K."""
        return (self.first_k == self.truth[:, None]).mean(axis=0)

    def first_accuracy(self) -> float:
        return float(self.first_k_accuracy()[0])

    def all_accuracy(self) -> float:
        return float(np.mean(self.all == self.truth))

    def to_json(self) -> dict[str, Any]:
        return {
            "scene": self.scene.tolist(),
            "truth": self.truth.tolist(),
            "first_k": self.first_k.tolist(),
            "all": self.all.tolist(),
            "n_segments": self.n_segments.tolist(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "SceneDecisions":
        k = np.asarray(d["first_k"], dtype=np.int64)
        return cls(
            np.asarray(d["scene"], dtype=np.int64),
            np.asarray(d["truth"], dtype=np.int64),
            k.reshape(len(d["scene"]), -1),
            np.asarray(d["all"], dtype=np.int64),
            np.asarray(d["n_segments"], dtype=np.int64),
        )


@dataclass(frozen=True, eq=False)
class RuleResult:
    """One result row's decisions on a unit's test scenes under one rule (``nn1``, ``nn5``, ``head``)."""

    row: str  # method row: a variant, softmax-nn, softmax-head or nolearn
    rule: str
    segment_accuracy: float  # every test segment classified alone
    decisions: SceneDecisions


def scene_decisions(
    segment_pred: np.ndarray,
    segment_distance: np.ndarray,
    segment_label: np.ndarray,
    segment_scene: np.ndarray,
    segment_position: np.ndarray,
    n_classes: int,
    k_max: int,
) -> SceneDecisions:
    """Group segment predictions by scene, in stream order, and vote over the first k and over all of them.

    segment_*: (N,) arrays over the test segments (predicted class, its distance for tie-breaks, true
    class, scene index, position in the scene). The first-k decision of a scene with fewer than k
    segments is its vote over all of them.
    """
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    n = segment_pred.shape[0]
    if not all(a.shape == (n,) for a in (segment_distance, segment_label, segment_scene, segment_position)):
        raise ValueError("segment arrays must all have shape (N,)")
    order = np.lexsort((segment_position, segment_scene))  # by scene, then position
    scenes, starts, counts = np.unique(segment_scene[order], return_index=True, return_counts=True)
    first_k = np.empty((scenes.shape[0], k_max), dtype=np.int64)
    all_ = np.empty(scenes.shape[0], dtype=np.int64)
    truth = np.empty(scenes.shape[0], dtype=np.int64)
    for i, (start, count) in enumerate(zip(starts, counts)):
        rows = order[start : start + count]  # this scene's segments in stream order
        labels = segment_label[rows]
        if np.any(labels != labels[0]):
            raise ValueError(f"scene {scenes[i]} has segments with different labels")
        truth[i] = labels[0]
        pred, dist = segment_pred[rows], segment_distance[rows]
        for k in range(1, k_max + 1):
            first_k[i, k - 1] = vote(pred[:k], dist[:k], n_classes)[0]
        all_[i] = vote(pred, dist, n_classes)[0]
    return SceneDecisions(scenes.astype(np.int64), truth, first_k, all_, counts.astype(np.int64))


def decide(row: str, rule: str, pred: np.ndarray, dist: np.ndarray, test: SegmentSet, truth: np.ndarray, n_classes: int, k_max: int) -> RuleResult:
    """Score segment predictions (pred, dist: (B,)) on a SegmentSet ``test`` with task labels ``truth`` (B,)."""
    decisions = scene_decisions(pred, dist, truth, test.scene, test.position, n_classes, k_max)
    return RuleResult(row, rule, float(np.mean(pred == truth)), decisions)


def neighbour_rules(
    row: str, labels: np.ndarray, distances: np.ndarray, test: SegmentSet, truth: np.ndarray, n_classes: int, neighbours: Sequence[int],
    k_max: int,
) -> list[RuleResult]:
    """Scene decisions for every neighbour count, from the (B, max n) neighbour labels and distances."""
    out = []
    for n in neighbours:
        pred, dist = neighbour_vote(labels[:, :n], distances[:, :n], n_classes)
        out.append(decide(row, rule_key(n), pred, dist, test, truth, n_classes, k_max))
    return out
