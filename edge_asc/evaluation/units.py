"""The unit cache: every (protocol, fold, seed, method) unit's scene decisions in ``<out>/units/<key>.json``.

A unit is reused only when its stored fingerprint equals the fingerprint of the settings and data of the
run at hand, so an interrupted evaluation resumes where it stopped and a changed setting recomputes what it
touches. The fingerprint hashes the data, the unit's scenes, the decision settings and, for trained
methods, ``to_dict`` of the exact TrainConfig the unit trains with (its variant, epochs and seed set; its
thread count pinned to 1, so a resume with other ``--threads`` reuses finished units). Files are written
atomically (``edge_asc.fsutil``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_asc import __version__
from edge_asc.config import to_dict
from edge_asc.evaluation.config import NO_LEARNING, EvalConfig
from edge_asc.evaluation.measures import UnitMeasures
from edge_asc.evaluation.plan import Task
from edge_asc.evaluation.scoring import RuleResult, SceneDecisions
from edge_asc.fsutil import atomic_write_text
from edge_asc.training.config import TrainConfig

log = logging.getLogger(__name__)

FORMAT = 1  # of a unit's JSON and of report.json
# The variants of a task train on the same augmented epochs: draw e of a scene is a pure function of (seed, e,
# the scene, its partner) (training/streams.py), shared through the feature cache. Changed from "shared per task"
# (0.1.0: one generator per task, consumed in sequence) when the draws became counter-based.
AUGMENTATION = "counter-based draws, shared through the feature cache"


@dataclass(frozen=True)
class TrainingInfo:
    """How a trained unit's model came out (absent for the no-learning baseline)."""

    train_s: float
    embed_index_s: float
    epochs: int
    final_loss: float | None
    importance: float | None  # mean h'' of the last epoch (the audio variant); NaN for the variants without h'' (None: no epoch)
    embedding_size: int
    onnx_torch_max_abs_diff: float  # ONNX Runtime against PyTorch on real test segments
    measures: UnitMeasures | None = None  # unknown-distance AUROC and adaptive-vs-fixed-k (evaluation.measures); None: cached before them


@dataclass(frozen=True, eq=False)
class Unit:
    """One method's result on one task: its scene decisions under every rule, and where they come from."""

    key: str
    task: str
    protocol: str
    fold: str  # the fold's name
    fold_index: int
    leaky: bool
    seed: int
    method: str
    classes: tuple[int, ...] | None  # class study: the class subset (global ids)
    draw: int
    labels: tuple[str, ...]  # the task's label names (its class ids index them)
    train_segments: int
    test_segments: int
    train_scenes: int
    test_scenes: int
    fingerprint: str
    wall_s: float
    info: TrainingInfo | None
    results: tuple[RuleResult, ...]
    fresh: bool = False  # computed by this run (not stored)

    @property
    def rows(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.row for r in self.results))

    def result(self, row: str, rule: str) -> RuleResult | None:
        return next((r for r in self.results if r.row == row and r.rule == rule), None)

    def to_json(self) -> dict[str, Any]:
        """The unit file's content (format 1)."""
        results: dict[str, dict[str, Any]] = {}
        for r in self.results:
            results.setdefault(r.row, {})[r.rule] = {"segment_accuracy": r.segment_accuracy, "decisions": r.decisions.to_json()}
        return {
            "format": FORMAT,
            "key": self.key,
            "task": self.task,
            "protocol": self.protocol,
            "fold": self.fold,
            "fold_index": self.fold_index,
            "leaky": self.leaky,
            "seed": self.seed,
            "method": self.method,
            "classes": list(self.classes) if self.classes is not None else None,
            "draw": self.draw,
            "labels": list(self.labels),
            "segments": {"train": self.train_segments, "test": self.test_segments},
            "scenes": {"train": self.train_scenes, "test": self.test_scenes},
            "fingerprint": self.fingerprint,
            "wall_s": self.wall_s,
            "info": dataclasses.asdict(self.info) if self.info is not None else {},
            "results": results,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Unit":
        if d.get("format") != FORMAT:
            raise ValueError(f"unit format {d.get('format')!r}, expected {FORMAT}")
        results = tuple(
            RuleResult(row, rule, float(r["segment_accuracy"]), SceneDecisions.from_json(r["decisions"]))
            for row, rules in d["results"].items()
            for rule, r in rules.items()
        )
        return cls(
            d["key"], d["task"], d["protocol"], d["fold"], int(d["fold_index"]), bool(d["leaky"]), int(d["seed"]), d["method"],
            tuple(d["classes"]) if d["classes"] is not None else None, int(d["draw"]), tuple(d["labels"]),
            int(d["segments"]["train"]), int(d["segments"]["test"]), int(d["scenes"]["train"]), int(d["scenes"]["test"]),
            d["fingerprint"], float(d["wall_s"]), _training_info(d["info"]) if d["info"] else None, results,
        )


def _training_info(d: Mapping[str, Any]) -> TrainingInfo:
    measures = d.get("measures")
    return TrainingInfo(**{**d, "measures": UnitMeasures.from_json(measures) if measures else None})


def unit_train_config(base: TrainConfig, task: Task, method: str, threads: int) -> TrainConfig:
    """The TrainConfig a trained unit uses: the run's settings with the task's epochs and seed and the method's variant."""
    return dataclasses.replace(
        base, epochs=task.epochs, seed=task.seed, threads=threads, model=dataclasses.replace(base.model, variant=method)
    )


def fingerprint(
    config: EvalConfig, train_config: TrainConfig, data_sha256: str, task: Task, method: str, train_scenes: np.ndarray,
    test_scenes: np.ndarray,
) -> str:
    """SHA-256 of everything a unit's result depends on; a cached unit is reused only when it matches."""
    h = hashlib.sha256(np.asarray(train_scenes, dtype=np.int64).tobytes())
    h.update(np.asarray(test_scenes, dtype=np.int64).tobytes())
    parts: dict[str, Any] = {
        "version": __version__,
        "data": data_sha256,
        "scenes": h.hexdigest(),
        "chunk_seconds": config.chunk_seconds,
        "method": method,
        "seed": task.seed,
        "classes": task.classes,
        "k_max": config.k_max,
        "neighbours": list(config.neighbours),
        "features": to_dict(train_config.features),
    }
    if method != NO_LEARNING:
        parts["train"] = to_dict(unit_train_config(train_config, task, method, threads=1))
        parts["index"] = [config.index_m, config.index_ef_construction, config.index_ef]
        parts["augmentation"] = AUGMENTATION
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def unit_path(units_dir: Path, key: str) -> Path:
    return Path(units_dir) / f"{key}.json"


def read_unit(path: Path, expected_fingerprint: str) -> Unit | None:
    """A finished unit when its file exists and matches ``expected_fingerprint``; otherwise None (it is recomputed)."""
    if not path.is_file():
        return None
    try:
        unit = Unit.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable cached unit (%s); recomputing it", path, exc)
        return None
    if unit.fingerprint != expected_fingerprint:
        log.info("%s: settings or data changed since it was computed; recomputing it", path.name)
        return None
    return unit


def write_json(path: Path, obj: Any) -> None:
    """JSON (indent 1, a final newline) written atomically: the format of every file of an evaluation folder."""
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def write_unit(units_dir: Path, unit: Unit) -> Path:
    path = unit_path(units_dir, unit.key)
    write_json(path, unit.to_json())
    return path


def units_sha256(units: Sequence[Unit]) -> str:
    """Identity of a set of units (keys and fingerprints): which runs of runs.json computed the same set."""
    return hashlib.sha256(json.dumps(sorted((u.key, u.fingerprint) for u in units)).encode()).hexdigest()
