"""Per-unit measurements beside the scene decisions (issue 10): "unknown" from the distance to the training
items, and adaptive decisions against fixed k.

Computed for every trained unit from its exported encoder's embeddings (runner.evaluate_model), stored in
its TrainingInfo (``measures``; a unit cached before they existed has none and is reported as not measured)
and summarised by evaluation.measures_report.

* ``novelty``: evaluation.novelty.leave_one_class_out on the unit's index (training segments) and test
  segments (recordings the index never held): the AUROC of the nearest-item distance for held-out classes
  against unheard recordings of known classes.
* ``latency``: each test scene streamed from its first segment through runtime.decision.DecisionPolicy
  (one fresh policy per scene, the segment labels of the unit's first neighbour rule): ``window`` with
  k = 1..k_max and ``adaptive`` with k_max' = 2..k_max. ``accuracy``: share of the segments whose decision
  is the scene's class (each decision weighted by the segments it used; a scene's last, incomplete window
  makes no decision, as in the daemon); ``segments``: mean segments per decision (the mean decision latency
  in segments; x segment_seconds for seconds). The same definitions as bench/bench_adaptive.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from edge_asc.evaluation.novelty import leave_one_class_out
from edge_asc.runtime.decision import DecisionPolicy, Vote

WINDOW, ADAPTIVE = "window", "adaptive"
NOVELTY_CHUNK = 1024  # test segments per distance block (bounds memory: chunk x training items)


@dataclass(frozen=True)
class LatencyPoint:
    mode: str  # WINDOW (fixed k) or ADAPTIVE (k = k_max)
    k: int
    accuracy: float  # share of segments decided right (decisions weighted by the segments they used)
    segments: float  # mean segments per decision
    decisions: int


@dataclass(frozen=True)
class UnitMeasures:
    novelty_auroc: float | None  # None: no class had both novel and known test segments
    novelty_per_class: tuple[tuple[int, float], ...]  # (task class id, AUROC with it held out of the index)
    latency: tuple[LatencyPoint, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "UnitMeasures":
        return cls(
            None if d["novelty_auroc"] is None else float(d["novelty_auroc"]),
            tuple((int(c), float(a)) for c, a in d["novelty_per_class"]),
            tuple(LatencyPoint(str(p["mode"]), int(p["k"]), float(p["accuracy"]), float(p["segments"]), int(p["decisions"])) for p in d["latency"]),
        )


def scene_streams(pred: np.ndarray, dist: np.ndarray, truth: np.ndarray, scene: np.ndarray, position: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(class, segment labels, distances) per scene, segments in stream order."""
    order = np.lexsort((position, scene))
    _, starts = np.unique(scene[order], return_index=True)
    out = []
    for rows in np.split(order, starts[1:]):
        out.append((int(truth[rows[0]]), pred[rows], dist[rows]))
    return out


def decide_streams(streams, n_classes: int, mode: str, k: int) -> LatencyPoint:
    """Every scene through a fresh DecisionPolicy in ``mode`` with k (window) or k_max (adaptive) = ``k``."""
    right = used = decisions = 0
    for cls, labels, dists in streams:
        policy = DecisionPolicy(n_classes, k=k if mode == WINDOW else 1, mode=mode, k_max=k)
        for i, (lab, d) in enumerate(zip(labels, dists)):
            out = policy.push(Vote(i, int(lab), float(d), i, i + 1, 0.0))
            if out is not None:
                used, decisions = used + out.k, decisions + 1
                right += out.k * int(out.label == cls)
    return LatencyPoint(mode, k, right / max(used, 1), used / max(decisions, 1), decisions)


def latency_curve(pred, dist, truth, scene, position, n_classes: int, k_max: int) -> tuple[LatencyPoint, ...]:
    streams = scene_streams(np.asarray(pred), np.asarray(dist), np.asarray(truth), np.asarray(scene), np.asarray(position))
    fixed = [decide_streams(streams, n_classes, WINDOW, k) for k in range(1, k_max + 1)]
    adaptive = [decide_streams(streams, n_classes, ADAPTIVE, k) for k in range(2, k_max + 1)]
    return tuple(fixed + adaptive)


def unit_measures(emb_train, y_train, emb_test, y_test, pred, dist, scene, position, n_classes: int, k_max: int) -> UnitMeasures:
    """Both measurements of one trained unit (see the module docstring)."""
    try:
        nov = leave_one_class_out(np.asarray(emb_train), np.asarray(y_train), np.asarray(emb_test), np.asarray(y_test), chunk=NOVELTY_CHUNK)
        auroc, per = nov.auroc, tuple(sorted(nov.per_class.items()))
    except ValueError:
        auroc, per = None, ()
    return UnitMeasures(auroc, per, latency_curve(pred, dist, y_test, scene, position, n_classes, k_max))
