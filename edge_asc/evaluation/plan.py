"""What an evaluation runs: the data in memory, the folds, and the tasks (a training set and a model seed).

Folds are grouped by recording (``training.splits.default_folds``: the official DCASE folds when present, else
``split_by_recording``), so no recording has scenes on both sides; the paper's random split of scenes is
optional and marked LEAKY. A task's methods (variants and baselines) train on the same scenes; each
(task, method) is a unit, cached in ``<out>/units`` (see units.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge_asc.contract import file_sha256
from edge_asc.evaluation.config import CLASSES, GROUPED, LEAKY, NO_LEARNING, PRIMARY, SOFTMAX, EvalConfig
from edge_asc.training.config import TrainConfig
from edge_asc.training.datasets import Dataset, Fold, SegmentSet, load_dataset
from edge_asc.training.extract import cached_segments
from edge_asc.training.feature_cache import FeatureCache
from edge_asc.training.splits import default_folds, random_scene_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One training set (a fold of a protocol, or a class subset of a fold) and one model seed.

    Its methods (variants and baselines) train on the same scenes and share each epoch's augmented features.
    """

    protocol: str  # GROUPED, LEAKY or CLASSES
    fold: int  # index into the protocol's folds (CLASSES: into the grouped folds)
    seed: int
    methods: tuple[str, ...]
    epochs: int
    classes: tuple[int, ...] | None = None  # CLASSES: the class subset (global class ids)
    draw: int = 0

    @property
    def name(self) -> str:
        if self.protocol == CLASSES:
            return f"classes{len(self.classes or ())}-d{self.draw}-f{self.fold + 1}-s{self.seed}"
        return f"{self.protocol}-f{self.fold + 1}-s{self.seed}"

    @property
    def fold_protocol(self) -> str:
        """The protocol whose folds the task uses (the class study uses the grouped folds)."""
        return GROUPED if self.protocol == CLASSES else self.protocol

    def unit_key(self, method: str) -> str:
        return f"{self.name}-{method}"


def task_cost(task: Task, n_classes: int) -> float:
    """Relative cost of a task, for progress estimates: epochs x share of the classes x (augmentation + models)."""
    share = len(task.classes) / n_classes if task.classes is not None else 1.0
    models = sum(m != NO_LEARNING for m in task.methods)
    return task.epochs * share * (2.0 + models) if models else 0.05 * share


def plan_tasks(cfg: EvalConfig, n_classes: int, n_grouped_folds: int, train_epochs: int) -> list[Task]:
    """Every task of an evaluation, main protocol first, then the leaky split, then the class-count study."""
    epochs = cfg.epochs or train_epochs
    model_methods = tuple(cfg.variants) + ((SOFTMAX,) if cfg.baselines else ())
    tasks = []
    protocols = [(GROUPED, n_grouped_folds, cfg.seeds)] + ([(LEAKY, 1, min(cfg.seeds, cfg.leaky_seeds))] if cfg.leaky else [])
    for protocol, n_folds, n_seeds in protocols:
        for fold in range(n_folds):
            for seed in range(n_seeds):
                methods = model_methods + ((NO_LEARNING,) if cfg.baselines and seed == 0 else ())
                if methods:
                    tasks.append(Task(protocol, fold, seed, methods, epochs))
    rng = np.random.default_rng(cfg.split_seed)
    class_methods = (PRIMARY, NO_LEARNING) if cfg.baselines else (PRIMARY,)
    for size in cfg.class_sizes:
        if size >= n_classes:
            log.warning("class-count study: size %d is not below the %d classes of the data; skipped", size, n_classes)
            continue
        for draw in range(cfg.class_draws):
            subset = tuple(int(c) for c in np.sort(rng.choice(n_classes, size=size, replace=False)))
            tasks.append(Task(CLASSES, draw % n_grouped_folds, 0, class_methods, cfg.class_epochs or epochs, subset, draw))
    return tasks


def without_empty_scenes(folds: Mapping[str, Sequence[Fold]], segment_scene: np.ndarray, n_scenes: int) -> tuple[dict[str, list[Fold]], np.ndarray]:
    """Folds without the scenes that have no segment (so they count in no denominator), and those scenes.

    segment_scene: (N,) scene index of every segment. A scene gets no segment when its audio could not be
    decoded (the file is then in the dataset's skipped list too) or is shorter than one segment.
    """
    has = np.zeros(n_scenes, dtype=bool)
    has[segment_scene] = True

    def keep(scenes: np.ndarray) -> np.ndarray:
        scenes = np.asarray(scenes, dtype=np.int64)
        return scenes[has[scenes]]

    out = {name: [dataclasses.replace(f, train=keep(f.train), test=keep(f.test)) for f in fs] for name, fs in folds.items()}
    return out, np.flatnonzero(~has)


@dataclass(eq=False)
class Context:
    """What every task reads: the data, the folds and the settings (inherited by worker processes)."""

    dataset: Dataset
    cache: FeatureCache  # clean features and augmentation draws (shared by the methods of a task and by the jobs)
    segments: SegmentSet  # clean features of every scene (from the cache)
    folds: dict[str, list[Fold]]  # protocol -> its folds
    config: EvalConfig
    train_config: TrainConfig  # the trainer's settings (variant, epochs and seed set per unit)
    data_sha256: str
    data_files: int
    units_dir: Path
    work_dir: Path
    scenes_without_segments: tuple[int, ...] = ()  # left out of every fold (see without_empty_scenes)

    @property
    def n_classes(self) -> int:
        return len(self.dataset.labels)

    def fold_of(self, task: Task) -> Fold:
        return self.folds[task.fold_protocol][task.fold]


@dataclass(frozen=True, eq=False)
class TaskData:
    """A task's scenes and classes: the class study maps its class subset onto 0 .. size-1."""

    train_scenes: np.ndarray  # (n,) int64 scene indices
    test_scenes: np.ndarray
    class_map: np.ndarray  # (all classes,) global class id -> task class id (-1: not in the task)
    label_names: tuple[str, ...]


def task_data(ctx: Context, task: Task) -> TaskData:
    """The scenes and classes a task trains and tests on."""
    fold = ctx.fold_of(task)
    n_all = ctx.n_classes
    train_scenes, test_scenes = np.asarray(fold.train), np.asarray(fold.test)
    if task.classes is None:
        return TaskData(train_scenes, test_scenes, np.arange(n_all), tuple(ctx.dataset.labels))
    class_map = np.full(n_all, -1, dtype=np.int64)
    class_map[list(task.classes)] = np.arange(len(task.classes))
    scene_class = class_map[ctx.dataset.scene_labels()]
    return TaskData(
        train_scenes[scene_class[train_scenes] >= 0],
        test_scenes[scene_class[test_scenes] >= 0],
        class_map,
        tuple(ctx.dataset.labels[c] for c in task.classes),
    )


def dataset_sha256(dataset: Dataset) -> tuple[str, int]:
    """SHA-256 over the sorted list of (relative path, SHA-256 of the file) of every audio and metadata file used."""
    root = Path(dataset.root)
    files = {Path(s.path) for s in dataset.scenes}
    files |= {root / name for name in ("metadata.csv", "meta.txt", "meta.csv") if (root / name).is_file()}
    lines = []
    for path in sorted(files):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        lines.append(f"{file_sha256(path)}  {rel}\n")
    return hashlib.sha256("".join(sorted(lines, key=lambda l: l[66:])).encode()).hexdigest(), len(lines)


def prepare(data: str | Path, out: str | Path, config: EvalConfig, train_config: TrainConfig, layout: str = "auto",
            cache: FeatureCache | None = None) -> Context:
    """Load the dataset and every segment's clean features (through ``cache``, extracted in ``config.jobs`` processes;
    None: an in-memory cache), and make the folds (creates ``out/units``)."""
    out = Path(out)
    fc = train_config.features
    dataset = load_dataset(data, layout=layout, chunk_seconds=config.chunk_seconds, sample_rate=fc.sample_rate, segment_seconds=fc.segment_seconds)
    units_dir, work_dir = out / "units", out / "work"
    units_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    data_sha, n_files = dataset_sha256(dataset)
    log.info("data %s: sha256 %s over %d files", dataset.root, data_sha, n_files)
    cache = cache if cache is not None else FeatureCache.disabled()
    segments = cached_segments(dataset, None, cache, fc, workers=config.jobs)
    folds = {GROUPED: default_folds(dataset, config.folds, config.split_seed)}
    if config.leaky:
        folds[LEAKY] = [random_scene_split(dataset, config.leaky_test_fraction, config.split_seed)]
    folds, undecidable = without_empty_scenes(folds, segments.scene, len(dataset.scenes))
    if undecidable.size:
        log.warning(
            "%d scenes gave no segment (undecodable audio, or shorter than a segment; first: %s); they are left out of every fold",
            undecidable.size, dataset.scenes[int(undecidable[0])].path,
        )
    for fold in folds[GROUPED]:
        if fold.leaky:
            log.warning("%s puts recordings on both sides; its results are marked leaky", fold.name)
    return Context(dataset, cache, segments, folds, config, train_config, data_sha, n_files, units_dir, work_dir,
                   tuple(int(i) for i in undecidable))
