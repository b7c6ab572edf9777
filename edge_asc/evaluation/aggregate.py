"""From units to the report's numbers: means and sample standard deviations over (fold, seed) units, per rule,
per class, per fold, the confusion matrix and the class-count study. Accuracy is the share of a fold's test
scenes decided correctly; the headline ratio is mean first-segment accuracy / mean all-segments accuracy.

Every result is a frozen dataclass; ``as_json`` turns one into the plain JSON of report.json.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from edge_asc.evaluation.config import BASELINE_ROWS, LEAKY, MODEL_VARIANTS, SOFTMAX, row_rank
from edge_asc.evaluation.scoring import HEAD_RULE, SceneDecisions
from edge_asc.evaluation.units import TrainingInfo, Unit
from edge_asc.training.datasets import Dataset, Fold, recordings_on_both_sides


def as_json(obj: Any) -> Any:
    """Plain JSON of a result: dataclasses as objects in field order (through their own ``to_json`` where they have one)."""
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if dataclasses.is_dataclass(obj):
        return {f.name: as_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: as_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_json(v) for v in obj]
    return obj


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of per-unit accuracies."""

    mean: float | None
    std: float | None
    n: int
    values: tuple[float, ...]


def summarise(values: Iterable[float]) -> Summary:
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return Summary(None, None, 0, ())
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return Summary(float(v.mean()), std, int(v.size), tuple(float(x) for x in v))


def ratio(first: float | None, all_: float | None) -> float | None:
    """first-segment / all-segments accuracy (None when all-segments accuracy is zero or missing)."""
    if first is None or all_ is None or all_ <= 0.0:
        return None
    return float(first / all_)


@dataclass(frozen=True)
class RuleSummary:
    """One row under one rule over several units (folds x seeds)."""

    first: Summary
    all: Summary
    ratio: float | None  # ratio of the means (the paper's headline)
    ratio_per_unit: Summary
    first_k: tuple[Summary, ...]  # k = 1 .. k_max
    scenes: int
    segment: Summary  # every test segment classified alone
    units: int


def summarise_decisions(decisions: Sequence[SceneDecisions], segment_accuracies: Sequence[float] = ()) -> RuleSummary:
    """Accuracies of several units under one rule: mean/std of first, first-k, all, ratio (and segment accuracy)."""
    if not decisions:
        raise ValueError("no decisions to summarise")
    k_max = min(d.k_max for d in decisions)
    first = [d.first_accuracy() for d in decisions]
    all_ = [d.all_accuracy() for d in decisions]
    per_k = np.array([d.first_k_accuracy()[:k_max] for d in decisions])  # (units, K)
    s_first, s_all = summarise(first), summarise(all_)
    return RuleSummary(
        first=s_first,
        all=s_all,
        ratio=ratio(s_first.mean, s_all.mean),
        ratio_per_unit=summarise(f / a for f, a in zip(first, all_) if a > 0),
        first_k=tuple(summarise(per_k[:, k]) for k in range(k_max)),
        scenes=int(sum(d.n_scenes for d in decisions)),
        segment=summarise(segment_accuracies),
        units=len(decisions),
    )


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (truth, pred), 1)
    return m


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (rows without scenes stay zero)."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


@dataclass(frozen=True)
class PerClass:
    """Pooled over units: per true class, scenes, share right at the first segment and over all segments."""

    scenes: tuple[int, ...]
    first: tuple[float | None, ...]  # None: no scene of the class
    all: tuple[float | None, ...]
    rule: str = ""


def per_class_accuracy(decisions: Sequence[SceneDecisions], n_classes: int, rule: str = "") -> PerClass:
    truth = np.concatenate([d.truth for d in decisions])
    first = np.concatenate([d.first for d in decisions])
    all_ = np.concatenate([d.all for d in decisions])
    scenes = np.bincount(truth, minlength=n_classes)
    right_first = np.bincount(truth[first == truth], minlength=n_classes)
    right_all = np.bincount(truth[all_ == truth], minlength=n_classes)
    share_first, share_all = right_first / np.maximum(scenes, 1), right_all / np.maximum(scenes, 1)
    return PerClass(
        tuple(int(s) for s in scenes),
        tuple(float(x) if s else None for x, s in zip(share_first, scenes)),
        tuple(float(x) if s else None for x, s in zip(share_all, scenes)),
        rule,
    )


@dataclass(frozen=True)
class Confusion:
    """First-segment confusion of one row and rule, pooled over units."""

    method: str
    rule: str
    counts: tuple[tuple[int, ...], ...]  # (C, C) rows = true class
    normalised: tuple[tuple[float, ...], ...]  # each row divided by its total


@dataclass(frozen=True)
class FoldEntry:
    fold: str
    first: float  # mean over seeds
    all: float
    seeds: int


@dataclass(frozen=True)
class PerFold:
    rule: str
    folds: tuple[FoldEntry, ...]


@dataclass(frozen=True)
class TrainingSummary:
    """Mean training figures of one trained method over its units."""

    units: int
    epochs: int
    train_s: float | None
    final_loss: float | None
    importance: float | None
    onnx_torch_max_abs_diff: float


@dataclass(frozen=True)
class FoldSummary:
    name: str
    leaky: bool
    train_scenes: int
    test_scenes: int
    train_recordings: int
    test_recordings: int
    recordings_on_both_sides: int
    test_classes: int


@dataclass(frozen=True)
class ProtocolSummary:
    """Everything measured on one protocol (grouped folds, or the leaky split)."""

    key: str
    title: str
    leaky: bool
    folds: tuple[FoldSummary, ...]
    seeds: tuple[int, ...]
    results: dict[str, dict[str, RuleSummary]]  # row (method) -> rule -> summary, rows in report order
    per_class: dict[str, PerClass]  # row -> its first rule (or the head)
    per_fold: dict[str, PerFold]
    training: dict[str, TrainingSummary]  # trained method -> its training figures
    confusion: Confusion | None  # the default variant's first-segment confusion

    def main_rule(self, row: str, rule: str) -> str:
        """``rule`` when the row has it, else its own (the softmax head's)."""
        return rule if rule in self.results[row] else HEAD_RULE


def fold_summary(dataset: Dataset, fold: Fold) -> FoldSummary:
    def recs(idx: np.ndarray) -> int:
        return len({dataset.scenes[i].recording_id for i in idx})

    labels = dataset.scene_labels()
    return FoldSummary(
        fold.name, bool(fold.leaky), int(len(fold.train)), int(len(fold.test)), recs(fold.train), recs(fold.test),
        len(recordings_on_both_sides(dataset, fold)), int(np.unique(labels[fold.test]).size),
    )


def _by_row(units: Sequence[Unit]) -> dict[str, dict[str, list[tuple[Unit, SceneDecisions, float]]]]:
    """row -> rule -> [(unit, decisions, segment accuracy)] in unit order; rows in report order."""
    rows: dict[str, dict[str, list[tuple[Unit, SceneDecisions, float]]]] = {}
    for unit in units:
        for r in unit.results:
            rows.setdefault(r.row, {}).setdefault(r.rule, []).append((unit, r.decisions, r.segment_accuracy))
    return {row: rows[row] for row in sorted(rows, key=row_rank)}


def _training(units: Sequence[Unit]) -> dict[str, TrainingSummary]:
    out = {}
    for method in sorted({u.method for u in units if u.info}, key=(MODEL_VARIANTS + (SOFTMAX,)).index):
        infos: list[TrainingInfo] = [u.info for u in units if u.method == method and u.info]

        def mean(name: str) -> float | None:
            v = [getattr(i, name) for i in infos if getattr(i, name) is not None and np.isfinite(getattr(i, name))]
            return float(np.mean(v)) if v else None

        out[method] = TrainingSummary(len(infos), infos[0].epochs, mean("train_s"), mean("final_loss"), mean("importance"),
                                      max(i.onnx_torch_max_abs_diff for i in infos))
    return out


def protocol_summary(protocol: str, title: str, dataset: Dataset, folds: Sequence[Fold], units: Sequence[Unit], first_rule: str, primary: str) -> ProtocolSummary:
    """Summaries of one protocol's units: per row and rule, per class, per fold, training, confusion."""
    n_classes = len(dataset.labels)
    rows = _by_row(units)
    results = {row: {rule: summarise_decisions([d for _, d, _ in items], [a for _, _, a in items]) for rule, items in rules.items()}
               for row, rules in rows.items()}
    per_class = {}
    for row, rules in rows.items():
        for rule, items in rules.items():
            if rule in (first_rule, HEAD_RULE):
                per_class[row] = per_class_accuracy([d for _, d, _ in items], n_classes, rule)
    confusion = None
    source = primary if primary in rows else next((r for r in MODEL_VARIANTS if r in rows), None)
    if source is not None and first_rule in rows[source]:
        decisions = [d for _, d, _ in rows[source][first_rule]]
        counts = confusion_matrix(np.concatenate([d.truth for d in decisions]), np.concatenate([d.first for d in decisions]), n_classes)
        confusion = Confusion(source, first_rule, tuple(map(tuple, counts.tolist())), tuple(map(tuple, row_normalise(counts).tolist())))
    per_fold = {}
    for row, rules in rows.items():
        rule = first_rule if first_rule in rules else HEAD_RULE
        entries = []
        for i, fold in enumerate(folds):
            got = [d for u, d, _ in rules.get(rule, []) if u.fold_index == i]
            if got:
                entries.append(FoldEntry(fold.name, float(np.mean([d.first_accuracy() for d in got])),
                                         float(np.mean([d.all_accuracy() for d in got])), len(got)))
        per_fold[row] = PerFold(rule, tuple(entries))
    return ProtocolSummary(
        key=protocol,
        title=title,
        leaky=protocol == LEAKY or any(f.leaky for f in folds),
        folds=tuple(fold_summary(dataset, f) for f in folds),
        seeds=tuple(sorted({u.seed for u in units})),
        results=results,
        per_class=per_class,
        per_fold=per_fold,
        training=_training(units),
        confusion=confusion,
    )


@dataclass(frozen=True)
class Ordering:
    """The variants ranked by mean accuracy under one rule, and whether that is the paper's order (audio > triplet > noattn)."""

    values: dict[str, float]  # variant -> mean accuracy, variants in MODEL_VARIANTS order
    ranked: tuple[str, ...]  # best first
    paper_order_holds: bool


@dataclass(frozen=True)
class Orderings:
    """The paper's ordering of the variants checked on first-segment and on all-segments accuracy."""

    first: Ordering
    all: Ordering


def variant_ordering(protocol: ProtocolSummary, rule: str, first: bool) -> Ordering:
    """Ranking of the encoder variants by mean first-segment (``first``) or all-segments accuracy."""
    values = {v: mean for v in MODEL_VARIANTS if v in protocol.results
              for s in [protocol.results[v].get(rule)] if s is not None
              for mean in [(s.first if first else s.all).mean] if mean is not None}
    ranked = tuple(sorted(values, key=lambda v: -values[v]))
    return Ordering(values, ranked, list(ranked) == [v for v in MODEL_VARIANTS if v in values])


def variant_orderings(protocol: ProtocolSummary, rule: str) -> Orderings:
    return Orderings(variant_ordering(protocol, rule, True), variant_ordering(protocol, rule, False))


def baselines_all(protocol: ProtocolSummary) -> dict[str, float]:
    """Mean all-segments accuracy of every baseline row under each of its rules, keyed ``"<row> (<rule>)"``.

    What the variants' all-segments accuracy is compared with (e.g. ``"softmax-nn (nn1)"``, ``"nolearn (nn5)"``).
    """
    return {f"{row} ({rule})": s.all.mean for row in BASELINE_ROWS if row in protocol.results
            for rule, s in protocol.results[row].items() if s.all.mean is not None}
