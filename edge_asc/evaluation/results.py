"""The report's content as one typed value (``Report``), built from the units; report.py renders it.

Everything the report states is computed here, including the paper's ordering of the variants and the
baselines' all-segments accuracy; ``as_json(report)`` is report.json (format 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_asc.evaluation.aggregate import (
    Orderings, ProtocolSummary, RuleSummary, Summary, baselines_all, protocol_summary, summarise, variant_orderings,
)
from edge_asc.evaluation.config import CLASSES, GROUPED, LEAKY, METHOD_TITLES, PRIMARY, row_rank
from edge_asc.evaluation.measures_report import MeasuresSummary, summarise_measures
from edge_asc.evaluation.plan import Context, Task
from edge_asc.evaluation.provenance import Reproducibility, Timing
from edge_asc.evaluation.scoring import first_rule
from edge_asc.evaluation.units import FORMAT, Unit
from edge_asc.training.datasets import Fold


@dataclass(frozen=True)
class ClassRun:
    """One row of one class-subset unit."""

    size: int
    draw: int
    fold: str
    classes: tuple[str, ...]  # the subset's label names
    method: str
    first: float
    all: float
    test_scenes: int


@dataclass(frozen=True)
class ClassPoint:
    size: int
    first: Summary
    all: Summary
    chance: float


@dataclass(frozen=True)
class ClassStudy:
    """Accuracy against the number of classes: random class subsets, each trained on those classes only."""

    rule: str
    epochs: int | None
    draws: int
    seed: int
    runs: tuple[ClassRun, ...]
    summary: dict[str, tuple[ClassPoint, ...]]  # row -> a point per subset size
    full: dict[str, ClassPoint] | None  # row -> the main run (all classes), when the grouped folds ran


def class_study(units: Sequence[Unit], rule: str, draws: int, epochs: int | None, seed: int, grouped: ProtocolSummary | None,
                n_classes: int) -> ClassStudy | None:
    if not units:
        return None
    runs = tuple(
        ClassRun(len(u.classes or ()), u.draw, u.fold, u.labels, r.row, r.decisions.first_accuracy(), r.decisions.all_accuracy(), r.decisions.n_scenes)
        for u in units for r in u.results if r.rule == rule
    )
    summary = {}
    for row in sorted({r.method for r in runs}, key=row_rank):
        mine = [r for r in runs if r.method == row]
        summary[row] = tuple(
            ClassPoint(size, summarise(r.first for r in mine if r.size == size), summarise(r.all for r in mine if r.size == size), 1.0 / size)
            for size in sorted({r.size for r in mine})
        )
    full = None
    if grouped is not None:
        full = {row: ClassPoint(n_classes, grouped.results[row][rule].first, grouped.results[row][rule].all, 1.0 / n_classes)
                for row in summary if row in grouped.results and rule in grouped.results[row]}
    return ClassStudy(rule, epochs, draws, seed, runs, summary, full)


@dataclass(frozen=True)
class DatasetInfo:
    root: str
    name: str
    layout: str
    labels: tuple[str, ...]
    scenes: int
    recordings: int
    segments: int
    segments_per_label: tuple[int, ...]
    minutes: float
    chunk_seconds: float | None
    skipped_files: tuple[str, ...]
    scenes_without_segments: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """Everything report.json, report.md and the figures show."""

    format: int
    created: str
    dataset: DatasetInfo
    segment_seconds: float
    n_features: int  # per frame of a segment (the feature settings')
    primary: str  # the default variant
    method_titles: dict[str, str]
    neighbours: tuple[int, ...]
    k_max: int
    epochs: int
    protocols: tuple[ProtocolSummary, ...]
    class_study: ClassStudy | None
    ordering: Orderings | None  # the paper's ordering of the variants under the first rule, on the grouped folds
    baselines_all: dict[str, float] | None  # the baselines' all-segments accuracy on the grouped folds
    reproducibility: Reproducibility | None = None
    timing: Timing | None = None
    measures: MeasuresSummary | None = None  # unknown in the default mode, adaptive vs fixed k (evaluation.measures_report)

    def protocol(self, key: str) -> ProtocolSummary | None:
        return next((p for p in self.protocols if p.key == key), None)

    @property
    def grouped(self) -> ProtocolSummary | None:
        return self.protocol(GROUPED)

    @property
    def first_rule(self) -> str:
        return first_rule(self.neighbours)

    def headline(self) -> RuleSummary | None:
        """The default variant under the first rule on the grouped folds (None when it did not run)."""
        grouped = self.grouped
        if grouped is None or self.primary not in grouped.results:
            return None
        return grouped.results[self.primary].get(self.first_rule)

    def title_of(self, row: str) -> str:
        return self.method_titles.get(row, row)


def _title(ctx: Context, protocol: str, folds: Sequence[Fold]) -> str:
    cfg = ctx.config
    if protocol == LEAKY:
        return f"LEAKY: the paper's random {round(100 * (1 - cfg.leaky_test_fraction))}/{round(100 * cfg.leaky_test_fraction)} split of scenes"
    if any(f.leaky for f in folds):
        return f"{len(folds)} official folds (some recordings on both sides: LEAKY)"
    return f"{len(folds)} folds grouped by recording"


def build_report(ctx: Context, units: Sequence[Unit], tasks: Sequence[Task]) -> Report:
    """The report's content from the units (without reproducibility and timing, which the caller adds)."""
    dataset, cfg = ctx.dataset, ctx.config
    rule = cfg.first_rule
    protocols = tuple(
        protocol_summary(p, _title(ctx, p, ctx.folds[p]), dataset, ctx.folds[p], [u for u in units if u.protocol == p], rule, PRIMARY)
        for p in ctx.folds if any(u.protocol == p for u in units)
    )
    grouped = next((p for p in protocols if p.key == GROUPED), None)
    class_tasks = [t for t in tasks if t.protocol == CLASSES]
    per_label = np.bincount(ctx.segments.labels, minlength=ctx.n_classes)
    info = DatasetInfo(
        root=str(dataset.root),
        name=Path(dataset.root).name,
        layout=dataset.layout,
        labels=tuple(dataset.labels),
        scenes=len(dataset.scenes),
        recordings=len(dataset.recording_ids),
        segments=len(ctx.segments),
        segments_per_label=tuple(int(x) for x in per_label),
        minutes=sum(s.duration_s for s in dataset.scenes) / 60.0,
        chunk_seconds=dataset.chunk_seconds,
        skipped_files=tuple(str(p) for p, _ in dataset.skipped),
        scenes_without_segments=tuple(str(dataset.scenes[i].path) for i in ctx.scenes_without_segments),
    )
    study = class_study([u for u in units if u.protocol == CLASSES], rule, cfg.class_draws,
                        class_tasks[0].epochs if class_tasks else None, class_tasks[0].seed if class_tasks else 0, grouped,
                        ctx.n_classes)
    return Report(
        format=FORMAT,
        created=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        dataset=info,
        segment_seconds=ctx.train_config.features.segment_seconds,
        n_features=ctx.train_config.features.n_features,
        primary=PRIMARY,
        method_titles=dict(METHOD_TITLES),
        neighbours=tuple(cfg.neighbours),
        k_max=cfg.k_max,
        epochs=cfg.epochs or ctx.train_config.epochs,
        protocols=protocols,
        class_study=study,
        ordering=variant_orderings(grouped, rule) if grouped is not None else None,
        baselines_all=baselines_all(grouped) if grouped is not None else None,
        measures=summarise_measures(units, PRIMARY, ctx.train_config.features.segment_seconds),
    )
