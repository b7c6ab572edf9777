"""The evaluation of issue 3: first-segment, first-k and all-segments accuracy on folds grouped by recording.

Protocol (``run_evaluation``):

* Scenes are the dataset's scenes (a file, or a 10 s chunk of a long file). Folds are grouped by recording
  (``datasets.default_folds``: the official DCASE folds when present, else ``split_by_recording``), so no
  recording has scenes on both sides of a fold; the paper's random 80/20 split of scenes is optional and
  reported separately as LEAKY.
* Per fold and model seed, each variant (audio, triplet, noattn) and the softmax baseline are trained on the
  fold's training scenes only, exported to ONNX and read back with ``encoder.Encoder`` (the daemon's path);
  the fold's training segments are embedded into a ``SegmentIndex`` (hnswlib) and every test segment is
  classified from its ``n`` nearest neighbours (``n`` in ``neighbours``; 1 in the paper).
* Scene decisions: first-k (the vote over the first k segments of the scene, k = 1..k_max; k = 1 is the
  first-segment decision) and all-segments (the vote over every segment). A scene shorter than k segments
  votes over all of its segments. Votes use the daemon's vote (``decision.vote``, tie-break ``distance``).
* Accuracy is the share of a fold's test scenes decided correctly; it is averaged over folds and seeds
  (mean and sample standard deviation over the (fold, seed) units). The headline ratio is mean first-segment
  accuracy / mean all-segments accuracy.

Every (protocol, fold, seed, method) unit writes its scene decisions to ``<out>/units/<key>.json``; a rerun
with the same settings and data reuses them, so a long run can be interrupted and resumed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from edge_asc.runtime.index import DEFAULT_EF, DEFAULT_EF_CONSTRUCTION, DEFAULT_M

log = logging.getLogger(__name__)

FORMAT = 1
PRIMARY = "audio"  # the default variant: the one the headline, the k table and the confusion matrix use
MODEL_VARIANTS = ("audio", "triplet", "noattn")
SOFTMAX = "softmax"  # the task method that trains the softmax baseline; it yields the next two rows
SOFTMAX_NN = "softmax-nn"  # the softmax-trained encoder, 1-NN on its embedding
SOFTMAX_HEAD = "softmax-head"  # the softmax-trained encoder, its own classifier head
NO_LEARNING = "nolearn"  # standardised mean/std of the 52 features + exact nearest neighbour
METHOD_TITLES = {
    "audio": "audio loss (paper)",
    "triplet": "triplet loss (eq. 6)",
    "noattn": "no attention",
    SOFTMAX_NN: "softmax-trained encoder, 1-NN",
    SOFTMAX_HEAD: "softmax-trained encoder, own head",
    NO_LEARNING: "no learning: feature mean/std, 1-NN",
}
HEAD_RULE = "head"  # decision rule key of the softmax head (no neighbours)


def rule_key(neighbours: int) -> str:
    """Key of the segment rule 'vote over the n nearest neighbours'."""
    return f"nn{neighbours}"


# --- votes and scene decisions ------------------------------------------------------------------


def vote(labels: np.ndarray, distances: np.ndarray, n_classes: int) -> int:
    """The daemon's majority vote (``decision.vote``, tie-break ``distance``) over (n,) labels and their distances.

    Equal votes go to the label whose votes have the smallest summed distance, then to the earlier label.
    """
    from edge_asc.runtime.decision import vote as decision_vote

    return decision_vote(labels, distances, n_classes, "distance")[0]


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
    won = np.array([vote(l, d, n_classes) for l, d in zip(labels, dists)], dtype=np.int64)  # (B,)
    nearest_of_winner = np.where(labels == won[:, None], dists, np.inf).min(axis=1)  # (B,)
    return won, nearest_of_winner


@dataclass(eq=False)
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

    def first_k_accuracy(self) -> np.ndarray:
        """(K,) share of scenes whose first-k decision is right, k = 1..K."""
        return (self.first_k == self.truth[:, None]).mean(axis=0)

    def first_accuracy(self) -> float:
        return float(self.first_k_accuracy()[0])

    def all_accuracy(self) -> float:
        return float(np.mean(self.all == self.truth))

    def to_dict(self) -> dict[str, Any]:
        return {
            "scene": self.scene.tolist(),
            "truth": self.truth.tolist(),
            "first_k": self.first_k.tolist(),
            "all": self.all.tolist(),
            "n_segments": self.n_segments.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SceneDecisions":
        k = np.asarray(d["first_k"], dtype=np.int64)
        return cls(
            np.asarray(d["scene"], dtype=np.int64),
            np.asarray(d["truth"], dtype=np.int64),
            k.reshape(len(d["scene"]), -1),
            np.asarray(d["all"], dtype=np.int64),
            np.asarray(d["n_segments"], dtype=np.int64),
        )


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
            first_k[i, k - 1] = vote(pred[:k], dist[:k], n_classes)
        all_[i] = vote(pred, dist, n_classes)
    return SceneDecisions(scenes.astype(np.int64), truth, first_k, all_, counts.astype(np.int64))


# --- summaries --------------------------------------------------------------------------------------


def summarise(values: Iterable[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of per-unit accuracies."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "n": int(v.size), "values": [float(x) for x in v]}


def ratio(first: float | None, all_: float | None) -> float | None:
    """first-segment / all-segments accuracy (None when all-segments accuracy is zero or missing)."""
    if first is None or all_ is None or all_ <= 0.0:
        return None
    return float(first / all_)


def summarise_decisions(decisions: Sequence[SceneDecisions]) -> dict[str, Any]:
    """Accuracies of several units (folds x seeds) under one rule: mean/std of first, first-k, all, ratio."""
    if not decisions:
        raise ValueError("no decisions to summarise")
    k_max = min(d.k_max for d in decisions)
    first = [d.first_accuracy() for d in decisions]
    all_ = [d.all_accuracy() for d in decisions]
    per_k = np.array([d.first_k_accuracy()[:k_max] for d in decisions])  # (units, K)
    s_first, s_all = summarise(first), summarise(all_)
    return {
        "first": s_first,
        "all": s_all,
        "ratio": ratio(s_first["mean"], s_all["mean"]),  # ratio of the means (the paper's headline)
        "ratio_per_unit": summarise(f / a for f, a in zip(first, all_) if a > 0),
        "first_k": [summarise(per_k[:, k]) for k in range(k_max)],
        "scenes": int(sum(d.scene.shape[0] for d in decisions)),
    }


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (truth, pred), 1)
    return m


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (rows without scenes stay zero)."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


def per_class_accuracy(decisions: Sequence[SceneDecisions], n_classes: int) -> dict[str, list]:
    """Pooled over units: per true class, scenes, share right at the first segment and over all segments."""
    truth = np.concatenate([d.truth for d in decisions])
    first = np.concatenate([d.first_k[:, 0] for d in decisions])
    all_ = np.concatenate([d.all for d in decisions])
    scenes = np.bincount(truth, minlength=n_classes)
    right_first = np.bincount(truth[first == truth], minlength=n_classes)
    right_all = np.bincount(truth[all_ == truth], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "scenes": scenes.tolist(),
            "first": [float(x) if s else None for x, s in zip(right_first / np.maximum(scenes, 1), scenes)],
            "all": [float(x) if s else None for x, s in zip(right_all / np.maximum(scenes, 1), scenes)],
        }


# --- settings -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """What ``edge-asc evaluate`` runs (YAML section ``evaluate:``; the trainer's settings are ``train:``)."""

    folds: int = 3  # folds grouped by recording (official folds of a DCASE layout take precedence)
    split_seed: int = 0  # the fold assignment; model seeds vary, folds stay fixed
    seeds: int = 3  # model seeds 0 .. seeds-1 per fold
    variants: tuple[str, ...] = MODEL_VARIANTS  # encoders trained with the triplet-style losses
    baselines: bool = True  # softmax encoder (head and 1-NN) and the no-learning 1-NN
    epochs: int | None = None  # None: the trainer's default
    leaky: bool = False  # also run the paper's random 80/20 scene split (reported as LEAKY)
    leaky_test_fraction: float = 0.2
    leaky_seeds: int = 1  # model seeds on the leaky split (a comparison with the paper's protocol, not the result)
    k_max: int = 10  # first-k decisions for k = 1 .. k_max
    neighbours: tuple[int, ...] = (1, 5)  # nearest neighbours per segment decision (1 = the paper)
    class_sizes: tuple[int, ...] = (2, 4, 7, 10)  # class-count study (sizes < number of classes)
    class_draws: int = 3  # random class subsets per size
    class_epochs: int | None = None  # epochs in the class-count study (None: epochs)
    chunk_seconds: float = 10.0  # scene length for long recordings
    jobs: int = 1  # training processes in parallel (each uses ``threads`` torch threads)
    threads: int = 1
    index_m: int = DEFAULT_M  # hnswlib settings of each fold's index (the daemon's defaults)
    index_ef_construction: int = DEFAULT_EF_CONSTRUCTION
    index_ef: int = DEFAULT_EF

    def __post_init__(self) -> None:
        if self.folds < 2 or self.seeds < 1 or self.leaky_seeds < 1 or self.k_max < 1 or self.class_draws < 0:
            raise ValueError("folds must be >= 2, seeds and leaky_seeds >= 1, k_max >= 1 and class_draws >= 0")
        bad = [v for v in self.variants if v not in MODEL_VARIANTS]
        if bad:
            raise ValueError(f"variants: {bad[0]!r} is not accepted; accepted values: {', '.join(MODEL_VARIANTS)}")
        if not self.neighbours or any(n < 1 for n in self.neighbours) or len(set(self.neighbours)) != len(self.neighbours):
            raise ValueError(f"neighbours must be distinct positive counts, got {list(self.neighbours)}")
        if any(n < 2 for n in self.class_sizes):
            raise ValueError(f"class_sizes must be >= 2, got {list(self.class_sizes)}")
        if not 0.0 < self.leaky_test_fraction < 1.0:
            raise ValueError(f"leaky_test_fraction must be in (0, 1), got {self.leaky_test_fraction}")
        if self.jobs < 1 or self.threads < 1:
            raise ValueError("jobs and threads must be >= 1")
        for name in ("epochs", "class_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


# --- the units of work -------------------------------------------------------------------------------------

GROUPED = "grouped"
LEAKY = "leaky"
CLASSES = "classes"


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


# --- running a task ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Context:
    """What every task reads: the data in memory, the folds and the settings (inherited by worker processes)."""

    dataset: Any  # datasets.Dataset
    audio: list[np.ndarray]  # (n_samples,) float32 per scene, in Dataset.scenes order
    segments: Any  # datasets.SegmentSet of every scene
    folds: dict[str, list[Any]]  # protocol -> [datasets.Fold]
    config: EvalConfig
    train_config: Any  # train_config.TrainConfig: the trainer's settings (variant, epochs and seed set per unit)
    data_sha256: str
    units_dir: Path
    work_dir: Path
    scenes_without_segments: tuple[int, ...] = ()  # left out of every fold (see without_empty_scenes)


class SharedAugmentation:
    """Each epoch's augmented training features, drawn once per task and replayed to every model of the task.

    The variants of a (fold, seed) therefore train on identical augmented data (a paired comparison), and the
    augmentation and feature extraction, most of an epoch's cost, is paid once instead of once per variant.
    The draws come from their own generator seeded by the task's seed.
    """

    def __init__(self, train_config: Any, audio: Sequence[np.ndarray], labels: np.ndarray, recordings: np.ndarray, seed: int) -> None:
        from edge_asc.training.train import SceneSource

        self.source = SceneSource(train_config, audio, labels, recordings)
        self.rng = np.random.default_rng([seed, 0xA06])
        self.epochs: list[tuple[np.ndarray, ...]] = []  # per epoch what SceneSource.epoch returns (features, labels, ...)

    def replay(self) -> "_Replay":
        """A fresh training source that hands out epoch 1, 2, ... of the shared draws."""
        return _Replay(self)

    def epoch(self, i: int) -> tuple[np.ndarray, ...]:
        while len(self.epochs) <= i:
            self.epochs.append(self.source.epoch(self.rng))
        return self.epochs[i]


class _Replay:
    """The training-source interface of ``train.fit`` (clean, epoch, fingerprint) over a SharedAugmentation."""

    def __init__(self, shared: SharedAugmentation) -> None:
        self.shared = shared
        self.done = 0

    def clean(self) -> tuple[np.ndarray, ...]:
        return self.shared.source.clean()

    def epoch(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:  # the trainer's rng is not used here
        out = self.shared.epoch(self.done)
        self.done += 1
        return out

    def fingerprint(self) -> dict[str, Any]:
        return self.shared.source.fingerprint() | {"augmentation": "shared per task"}


# Trainer options added after format 1's units were computed, with the value that leaves training exactly
# as it was before they existed. At that value they are left out of a unit's fingerprint, so adding an
# option does not invalidate finished work; at any other value they are part of it.
NEUTRAL_TRAIN_OPTIONS: dict[tuple[str, ...], Any] = {
    ("robust_normalization",): False,
    ("augment", "pieces"): 1,
    ("model", "input_clip"): 0.0,
    ("model", "input_features"): "all",
}


def train_fingerprint(train: dict[str, Any]) -> dict[str, Any]:
    """``to_dict`` of a TrainConfig without the options that sit at their neutral value."""
    out = json.loads(json.dumps(train))
    for path, neutral in NEUTRAL_TRAIN_OPTIONS.items():
        node = out
        for key in path[:-1]:
            node = node.get(key, {})
        if path[-1] in node and node[path[-1]] == neutral:
            del node[path[-1]]
    return out


def unit_fingerprint(ctx: Context, task: Task, method: str, train_scenes: np.ndarray, test_scenes: np.ndarray) -> str:
    """SHA-256 of everything a unit's result depends on; a cached unit is reused only when it matches."""
    from edge_asc import __version__
    from edge_asc.config import to_dict

    cfg = ctx.config
    h = hashlib.sha256(np.asarray(train_scenes, dtype=np.int64).tobytes())
    h.update(np.asarray(test_scenes, dtype=np.int64).tobytes())
    parts = {
        "version": __version__,
        "data": ctx.data_sha256,
        "scenes": h.hexdigest(),
        "chunk_seconds": cfg.chunk_seconds,
        "method": method,
        "seed": task.seed,
        "classes": task.classes,
        "k_max": cfg.k_max,
        "neighbours": list(cfg.neighbours),
        "features": ctx.train_config.features.to_dict(),
    }
    if method != NO_LEARNING:
        parts["train"] = train_fingerprint(to_dict(dataclasses.replace(ctx.train_config, epochs=task.epochs, seed=task.seed, threads=1)))
        parts["index"] = [cfg.index_m, cfg.index_ef_construction, cfg.index_ef]
        parts["augmentation"] = "shared per task"
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def read_unit(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """A finished unit's JSON when it exists and matches ``fingerprint``; otherwise None (it is recomputed)."""
    if not path.is_file():
        return None
    try:
        unit = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable cached unit (%s); recomputing it", path, exc)
        return None
    if unit.get("fingerprint") != fingerprint:
        log.info("%s: settings or data changed since it was computed; recomputing it", path.name)
        return None
    return unit


def write_json(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _decide(
    pred: np.ndarray, dist: np.ndarray, test: Any, truth: np.ndarray, n_classes: int, k_max: int
) -> dict[str, Any]:
    decisions = scene_decisions(pred, dist, truth, test.scene, test.position, n_classes, k_max)
    return {"segment_accuracy": float(np.mean(pred == truth)), "decisions": decisions.to_dict()}


def _neighbour_rules(
    labels: np.ndarray, distances: np.ndarray, test: Any, truth: np.ndarray, n_classes: int, cfg: EvalConfig
) -> dict[str, Any]:
    """Scene decisions for every neighbour count, from the (B, max n) neighbour lists."""
    out = {}
    for n in cfg.neighbours:
        pred, dist = neighbour_vote(labels[:, :n], distances[:, :n], n_classes)
        out[rule_key(n)] = _decide(pred, dist, test, truth, n_classes, cfg.k_max)
    return out


def evaluate_no_learning(ctx: Context, train: Any, y_train: np.ndarray, test: Any, y_test: np.ndarray, n_classes: int) -> dict[str, Any]:
    from edge_asc.evaluation.baselines import NoLearningBaseline

    baseline = NoLearningBaseline.fit(train.features, y_train)
    n = min(max(ctx.config.neighbours), len(train))
    labels, distances = baseline.neighbours(test.features, n)  # (B, n) each
    return {NO_LEARNING: _neighbour_rules(labels, distances, test, y_test, n_classes, ctx.config)}


def evaluate_model(
    ctx: Context,
    task: Task,
    method: str,
    shared: SharedAugmentation,
    label_names: Sequence[str],
    train: Any,
    y_train: np.ndarray,
    test: Any,
    y_test: np.ndarray,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``method`` on the task's scenes, export it, index the training segments, decide the test scenes."""
    import torch

    from edge_asc.runtime.encoder import Encoder
    from edge_asc.training.export import export_onnx
    from edge_asc.runtime.index import SegmentIndex
    from edge_asc.training.train import fit

    cfg = ctx.config
    n_classes = len(label_names)
    base = ctx.train_config
    config = dataclasses.replace(
        base,
        epochs=task.epochs,
        seed=task.seed,
        threads=cfg.threads,
        model=dataclasses.replace(base.model, variant=method),
    )
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    trained = fit(config, shared.replay(), label_names, progress=False)
    train_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    onnx_path = ctx.work_dir / f"{task.unit_key(method)}.onnx"
    export_onnx(trained, onnx_path)
    try:
        encoder = Encoder(onnx_path, threads=cfg.threads)
        emb_train = encoder.embed(train.features)  # (N, D)
        emb_test = encoder.embed(test.features)  # (B, D)
        check = test.features[:256]
        onnx_diff = float(np.max(np.abs(encoder.embed(check) - trained.embed(check)))) if len(check) else 0.0
        index = SegmentIndex.build(
            emb_train,
            y_train,
            train.scene,
            train.recording,
            encoder.meta,
            cfg.index_m,
            cfg.index_ef_construction,
            cfg.index_ef,
            positions=train.position,
            threads=cfg.threads,
        )
    finally:
        onnx_path.unlink(missing_ok=True)
    n = min(max(cfg.neighbours), len(index))
    labels, distances, _ = index.query(emb_test, n)  # (B, n) each
    rows = {SOFTMAX_NN if method == SOFTMAX else method: _neighbour_rules(labels, distances, test, y_test, n_classes, cfg)}
    if method == SOFTMAX:
        proba = trained.predict_proba(test.features)  # (B, C)
        pred = proba.argmax(axis=1).astype(np.int64)
        rows[SOFTMAX_HEAD] = {HEAD_RULE: _decide(pred, 1.0 - proba.max(axis=1), test, y_test, n_classes, cfg.k_max)}
    last = trained.history[-1] if trained.history else {}
    info = {
        "train_s": train_s,
        "embed_index_s": time.perf_counter() - t1,
        "epochs": trained.epoch,
        "final_loss": last.get("loss"),
        "importance": last.get("importance"),
        "embedding_size": int(encoder.meta.embedding_size),
        "onnx_torch_max_abs_diff": onnx_diff,
    }
    return rows, info


def task_data(ctx: Context, task: Task) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(train scenes, test scenes, class map global id -> task id (-1: not in the task), label names)."""
    protocol = GROUPED if task.protocol == CLASSES else task.protocol
    fold = ctx.folds[protocol][task.fold]
    n_all = len(ctx.dataset.labels)
    train_scenes, test_scenes = np.asarray(fold.train), np.asarray(fold.test)
    if task.classes is None:
        return train_scenes, test_scenes, np.arange(n_all), tuple(ctx.dataset.labels)
    class_map = np.full(n_all, -1, dtype=np.int64)
    class_map[list(task.classes)] = np.arange(len(task.classes))
    scene_class = class_map[ctx.dataset.scene_labels()]
    return (
        train_scenes[scene_class[train_scenes] >= 0],
        test_scenes[scene_class[test_scenes] >= 0],
        class_map,
        tuple(ctx.dataset.labels[c] for c in task.classes),
    )


def run_task(ctx: Context, task: Task) -> list[dict[str, Any]]:
    """Every method of one task (reusing cached units); returns the units' JSON objects."""
    train_scenes, test_scenes, class_map, label_names = task_data(ctx, task)
    protocol = GROUPED if task.protocol == CLASSES else task.protocol
    fold = ctx.folds[protocol][task.fold]
    units, todo = [], []
    for method in task.methods:
        path = ctx.units_dir / f"{task.unit_key(method)}.json"
        fp = unit_fingerprint(ctx, task, method, train_scenes, test_scenes)
        cached = read_unit(path, fp)
        if cached is not None:
            units.append(cached)
        else:
            todo.append((method, path, fp))
    if not todo:
        return units
    if test_scenes.size == 0 or np.unique(class_map[ctx.dataset.scene_labels()[train_scenes]]).size < 2:
        log.warning("%s: no test scene or fewer than 2 training classes in this fold; skipped", task.name)
        return units
    train = ctx.segments.of_scenes(train_scenes)
    test = ctx.segments.of_scenes(test_scenes)
    y_train, y_test = class_map[train.labels], class_map[test.labels]
    n_classes = len(label_names)
    shared = None
    for method, path, fp in todo:
        t0 = time.perf_counter()
        info: dict[str, Any] = {}
        if method == NO_LEARNING:
            rows = evaluate_no_learning(ctx, train, y_train, test, y_test, n_classes)
        else:
            if shared is None:
                scene_labels = class_map[ctx.dataset.scene_labels()[train_scenes]]
                shared = SharedAugmentation(
                    ctx.train_config,
                    [ctx.audio[i] for i in train_scenes],
                    scene_labels,
                    ctx.dataset.scene_recordings()[train_scenes],
                    task.seed,
                )
            rows, info = evaluate_model(ctx, task, method, shared, label_names, train, y_train, test, y_test)
        unit = {
            "format": FORMAT,
            "key": task.unit_key(method),
            "task": task.name,
            "protocol": task.protocol,
            "fold": fold.name,
            "fold_index": task.fold,
            "leaky": bool(fold.leaky),
            "seed": task.seed,
            "method": method,
            "classes": list(task.classes) if task.classes is not None else None,
            "draw": task.draw,
            "labels": list(label_names),
            "segments": {"train": len(train), "test": len(test)},
            "scenes": {"train": int(train_scenes.size), "test": int(test_scenes.size)},
            "fingerprint": fp,
            "wall_s": time.perf_counter() - t0,
            "info": info,
            "results": rows,
        }
        write_json(path, unit)
        unit = dict(unit, _fresh=True)  # not stored: marks units computed in this run
        first = rows.get(SOFTMAX_NN if method == SOFTMAX else method, {}).get(rule_key(ctx.config.neighbours[0]))
        if first is not None:
            d = SceneDecisions.from_dict(first["decisions"])
            log.info(
                "%s: first segment %.1f%%, all segments %.1f%% (%d test scenes) in %.0f s",
                unit["key"], 100 * d.first_accuracy(), 100 * d.all_accuracy(), d.scene.shape[0], unit["wall_s"],
            )
        units.append(unit)
    return units


# --- the whole evaluation ----------------------------------------------------------------------------------

_CONTEXT: Context | None = None  # set in the parent before worker processes fork


def _run_task_in_worker(task: Task) -> tuple[str, list[dict[str, Any]]]:
    if _CONTEXT is None:
        raise RuntimeError("evaluation worker started without its context (needs the fork start method)")
    return task.name, run_task(_CONTEXT, task)


def dataset_sha256(dataset: Any) -> tuple[str, int]:
    """SHA-256 over the sorted list of (relative path, SHA-256 of the file) of every audio and metadata file used."""
    from edge_asc.runtime.encoder import file_sha256

    root = Path(dataset.root)
    files = {Path(s.path) for s in dataset.scenes}
    files |= {root / name for name in ("metadata.csv", "meta.txt", "meta.csv") if (root / name).is_file()}
    lines = []
    for path in sorted(files):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        lines.append(f"{file_sha256(path)}  {rel}\n")
    return hashlib.sha256("".join(sorted(lines, key=lambda l: l[66:])).encode()).hexdigest(), len(lines)


def package_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    from edge_asc import __version__

    out = {"python": platform.python_version(), "edge-asc": __version__}
    for name in ("numpy", "torch", "onnx", "onnxruntime", "hnswlib", "soundfile", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_evaluation(
    data: str | Path,
    out: str | Path,
    config: EvalConfig,
    train_config: Any,
    command: str = "",
    layout: str = "auto",
) -> dict[str, Any]:
    """Run (or resume) every task, aggregate the units and write the report into ``out``. Returns the report."""
    global _CONTEXT
    from edge_asc.training.datasets import default_folds, extract_segments, load_dataset, load_scene_audio, random_scene_split
    from edge_asc.dsp.features import FeatureExtractor
    from edge_asc.evaluation.report import write_report

    t_start = time.perf_counter()
    out = Path(out)
    units_dir, work_dir = out / "units", out / "work"
    fc = train_config.features
    dataset = load_dataset(data, layout=layout, chunk_seconds=config.chunk_seconds, sample_rate=fc.sample_rate, segment_seconds=fc.segment_seconds)
    units_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    data_sha, n_files = dataset_sha256(dataset)
    log.info("data %s: sha256 %s over %d files", dataset.root, data_sha, n_files)
    audio = load_scene_audio(dataset)
    segments = extract_segments(dataset, FeatureExtractor(train_config.features), audio=audio)
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
    ctx = Context(dataset, audio, segments, folds, config, train_config, data_sha, units_dir, work_dir, tuple(int(i) for i in undecidable))
    tasks = plan_tasks(config, len(dataset.labels), len(folds[GROUPED]), train_config.epochs)
    log.info(
        "%d tasks: %d folds x %d seeds x (%s)%s%s; %d job(s) x %d thread(s)",
        len(tasks), len(folds[GROUPED]), config.seeds, ", ".join(tasks[0].methods) if tasks else "-",
        " + leaky split" if config.leaky else "",
        f" + class-count study {list(config.class_sizes)} x {config.class_draws} draws" if config.class_draws else "",
        config.jobs, config.threads,
    )

    units: list[dict[str, Any]] = []
    done, done_cost = 0, 0.0
    cost = {task.name: task_cost(task, len(dataset.labels)) for task in tasks}
    total_cost = sum(cost.values())
    t_tasks = time.perf_counter()

    def finished(name: str, task_units: list[dict[str, Any]]) -> None:
        nonlocal done, done_cost
        done += 1
        done_cost += cost[name]
        units.extend(task_units)
        elapsed = time.perf_counter() - t_tasks
        eta = elapsed / done_cost * (total_cost - done_cost)  # a rough estimate: tasks differ in size
        log.info("[%d/%d] %s done; %.0f s elapsed, about %.0f s left", done, len(tasks), name, elapsed, eta)

    if config.jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            finished(task.name, run_task(ctx, task))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        _CONTEXT = ctx  # forked workers inherit the data in memory (and the logging set up by the CLI)
        try:
            with ProcessPoolExecutor(max_workers=config.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(_run_task_in_worker, task): task for task in tasks}
                for future in as_completed(futures):
                    name, task_units = future.result()
                    finished(name, task_units)
        finally:
            _CONTEXT = None

    order = {task.unit_key(m): i for i, task in enumerate(tasks) for m in task.methods}
    units.sort(key=lambda u: order.get(u["key"], len(order)))  # plan order, whatever order the workers finished in
    report = build_report(ctx, units, tasks)
    report["reproducibility"] = {
        "command": command,
        "settings": _plain(config),
        "train_settings": _plain(train_config),
        "model_seeds": list(range(config.seeds)),
        "split_seed": config.split_seed,
        "data_sha256": data_sha,
        "data_files": n_files,
        "versions": package_versions(),
        "cpu_count": os.cpu_count(),
    }
    computed = [u for u in units if u.get("_fresh")]
    report["timing"] = {
        "wall_s": time.perf_counter() - t_start,
        "units": len(units),
        "units_computed_now": len(computed),
        "unit_compute_s": float(sum(u["wall_s"] for u in units)),
        "per_method_mean_s": {
            m: float(np.mean([u["wall_s"] for u in units if u["method"] == m and u["protocol"] != CLASSES]))
            for m in sorted({u["method"] for u in units if u["protocol"] != CLASSES})
        },
        "jobs": config.jobs,
        "threads_per_job": config.threads,
        "cpu_s": cpu_seconds(),  # this process and its finished workers: the work, whatever else ran on the machine
        "load_average_1_5_15": list(os.getloadavg()),  # at the end of the run: how busy the machine was
    }
    report["timing"]["complete_run"] = record_run(out, report, command, units)
    write_report(report, out)
    try:
        work_dir.rmdir()
    except OSError:
        pass
    return report


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have finished (the pool's workers)."""
    import resource

    return float(sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))))


RUNS_FILE = "runs.json"  # one entry per invocation: when, how long, how many units it computed


def record_run(out: Path, report: Mapping[str, Any], command: str, units: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Append this invocation to ``<out>/runs.json``; return the latest run that computed every unit itself.

    A rerun that only reuses cached units (e.g. to refresh notes.md) keeps the wall time of the run that
    did the work; a report whose units come from several partial runs has no complete run (None).
    """
    path = out / RUNS_FILE
    runs: list[dict[str, Any]] = []
    if path.is_file():
        try:
            runs = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable (%s); starting a new run log", path, exc)
    t = report["timing"]
    units_sha = hashlib.sha256(json.dumps(sorted((u["key"], u["fingerprint"]) for u in units)).encode()).hexdigest()
    runs.append({
        "created": report["created"],
        "command": command,
        "wall_s": t["wall_s"],
        "units": t["units"],
        "units_computed": t["units_computed_now"],
        "jobs": t["jobs"],
        "threads_per_job": t["threads_per_job"],
        "cpu_s": t["cpu_s"],
        "load_average_1_5_15": t["load_average_1_5_15"],
        "units_sha256": units_sha,
    })
    write_json(path, runs)
    complete = [r for r in runs if r["units_sha256"] == units_sha and r["units_computed"] == r["units"]]
    return complete[-1] if complete else None


def _plain(obj: Any) -> Any:
    from edge_asc.config import to_dict

    return to_dict(obj)


# --- aggregation -----------------------------------------------------------------------------------------

TARGET_FIRST = 0.50  # first-segment accuracy of the default variant (issue 3)
TARGET_RATIO = 0.90  # first-segment / all-segments
BASELINE_ROWS = (SOFTMAX_NN, SOFTMAX_HEAD, NO_LEARNING)
ROW_ORDER = MODEL_VARIANTS + BASELINE_ROWS


def _rows_of(units: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[tuple[SceneDecisions, float]]]]:
    """row -> rule -> [(decisions, segment accuracy)] over units."""
    rows: dict[str, dict[str, list[tuple[SceneDecisions, float]]]] = {}
    for unit in units:
        for row, rules in unit["results"].items():
            for rule, result in rules.items():
                decisions = SceneDecisions.from_dict(result["decisions"])
                rows.setdefault(row, {}).setdefault(rule, []).append((decisions, float(result["segment_accuracy"])))
    return {row: rows[row] for row in sorted(rows, key=lambda r: ROW_ORDER.index(r) if r in ROW_ORDER else len(ROW_ORDER))}


def without_empty_scenes(folds: Mapping[str, Sequence[Any]], segment_scene: np.ndarray, n_scenes: int) -> tuple[dict[str, list[Any]], np.ndarray]:
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


def fold_summary(dataset: Any, fold: Any) -> dict[str, Any]:
    from edge_asc.training.datasets import recordings_on_both_sides

    def recs(idx: np.ndarray) -> int:
        return len({dataset.scenes[i].recording_id for i in idx})

    shared = recordings_on_both_sides(dataset, fold)
    labels = dataset.scene_labels()
    return {
        "name": fold.name,
        "leaky": bool(fold.leaky),
        "train_scenes": int(len(fold.train)),
        "test_scenes": int(len(fold.test)),
        "train_recordings": recs(fold.train),
        "test_recordings": recs(fold.test),
        "recordings_on_both_sides": len(shared),
        "test_classes": int(np.unique(labels[fold.test]).size),
    }


def protocol_summary(ctx: Context, protocol: str, units: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    dataset, cfg = ctx.dataset, ctx.config
    n_classes = len(dataset.labels)
    folds = ctx.folds[protocol]
    rows = _rows_of(units)
    results: dict[str, dict[str, Any]] = {}
    per_class: dict[str, dict[str, Any]] = {}
    first_rule = rule_key(cfg.neighbours[0])
    for row, rules in rows.items():
        results[row] = {}
        for rule, items in rules.items():
            summary = summarise_decisions([d for d, _ in items])
            summary["segment"] = summarise(a for _, a in items)
            summary["units"] = len(items)
            results[row][rule] = summary
            if rule in (first_rule, HEAD_RULE):
                per_class[row] = per_class_accuracy([d for d, _ in items], n_classes) | {"rule": rule}
    confusion = None
    source = PRIMARY if PRIMARY in rows else next((r for r in MODEL_VARIANTS if r in rows), None)
    if source is not None and first_rule in rows[source]:
        decisions = [d for d, _ in rows[source][first_rule]]
        counts = confusion_matrix(
            np.concatenate([d.truth for d in decisions]), np.concatenate([d.first_k[:, 0] for d in decisions]), n_classes
        )
        confusion = {"method": source, "rule": first_rule, "counts": counts.tolist(), "normalised": row_normalise(counts).tolist()}
    per_fold: dict[str, dict[str, Any]] = {}
    for row in rows:
        rule = first_rule if first_rule in rows[row] else HEAD_RULE
        entries = []
        for i, fold in enumerate(folds):
            got = [SceneDecisions.from_dict(u["results"][row][rule]["decisions"]) for u in units
                   if u["fold_index"] == i and rule in u["results"].get(row, {})]
            if got:
                entries.append({
                    "fold": fold.name,
                    "first": float(np.mean([d.first_accuracy() for d in got])),
                    "all": float(np.mean([d.all_accuracy() for d in got])),
                    "seeds": len(got),
                })
        per_fold[row] = {"rule": rule, "folds": entries}
    training: dict[str, dict[str, Any]] = {}
    for method in sorted({u["method"] for u in units if u.get("info")}, key=(MODEL_VARIANTS + (SOFTMAX,)).index):
        infos = [u["info"] for u in units if u["method"] == method and u.get("info")]

        def mean(key: str) -> float | None:
            v = [i[key] for i in infos if i.get(key) is not None and np.isfinite(i[key])]
            return float(np.mean(v)) if v else None

        training[method] = {
            "units": len(infos),
            "epochs": infos[0].get("epochs"),
            "train_s": mean("train_s"),
            "final_loss": mean("final_loss"),
            "importance": mean("importance"),
            "onnx_torch_max_abs_diff": max(i.get("onnx_torch_max_abs_diff", 0.0) for i in infos),
        }
    leaky = protocol == LEAKY or any(f.leaky for f in folds)
    if protocol == LEAKY:
        title = f"LEAKY: the paper's random {round(100 * (1 - cfg.leaky_test_fraction))}/{round(100 * cfg.leaky_test_fraction)} split of scenes"
    else:
        title = f"{len(folds)} folds grouped by recording" if not leaky else f"{len(folds)} official folds (some recordings on both sides: LEAKY)"
    return {
        "key": protocol,
        "title": title,
        "leaky": leaky,
        "folds": [fold_summary(dataset, f) for f in folds],
        "seeds": sorted({int(u["seed"]) for u in units}),
        "results": results,
        "per_class": per_class,
        "per_fold": per_fold,
        "training": training,
        "confusion": confusion,
    }


def class_study_summary(ctx: Context, units: Sequence[Mapping[str, Any]], grouped: Mapping[str, Any] | None, epochs: int | None) -> dict[str, Any] | None:
    if not units:
        return None
    rule = rule_key(ctx.config.neighbours[0])
    runs = []
    for unit in units:
        for row, rules in unit["results"].items():
            if rule not in rules:
                continue
            d = SceneDecisions.from_dict(rules[rule]["decisions"])
            runs.append({
                "size": len(unit["classes"]),
                "draw": unit["draw"],
                "fold": unit["fold"],
                "classes": unit["labels"],
                "method": row,
                "first": d.first_accuracy(),
                "all": d.all_accuracy(),
                "test_scenes": int(d.scene.shape[0]),
            })
    summary: dict[str, list[dict[str, Any]]] = {}
    for row in sorted({r["method"] for r in runs}, key=lambda r: ROW_ORDER.index(r) if r in ROW_ORDER else 99):
        summary[row] = [
            {
                "size": size,
                "first": summarise(r["first"] for r in runs if r["method"] == row and r["size"] == size),
                "all": summarise(r["all"] for r in runs if r["method"] == row and r["size"] == size),
                "chance": 1.0 / size,
            }
            for size in sorted({r["size"] for r in runs if r["method"] == row})
        ]
    full = None
    if grouped is not None:
        n = len(ctx.dataset.labels)
        full = {row: {"size": n, "first": grouped["results"][row][rule]["first"], "all": grouped["results"][row][rule]["all"], "chance": 1.0 / n}
                for row in summary if row in grouped["results"] and rule in grouped["results"][row]}
    return {
        "rule": rule,
        "epochs": epochs,
        "draws": ctx.config.class_draws,
        "seed": 0,
        "runs": runs,
        "summary": summary,
        "full": full,
    }


def target_check(grouped: Mapping[str, Any], neighbours: int) -> dict[str, Any] | None:
    """The issue's target for the default variant, and the paper's orderings, on the grouped folds."""
    rule = rule_key(neighbours)
    res = grouped["results"]
    if PRIMARY not in res or rule not in res[PRIMARY]:
        return None
    main = res[PRIMARY][rule]
    first, all_, r = main["first"]["mean"], main["all"]["mean"], main["ratio"]
    baselines = {
        f"{row} ({rl})": s["all"]["mean"] for row in BASELINE_ROWS if row in res for rl, s in res[row].items()
    }
    best_name, best = max(baselines.items(), key=lambda kv: kv[1]) if baselines else (None, None)
    checks = {
        "first_segment": {"value": first, "target": TARGET_FIRST, "met": first >= TARGET_FIRST},
        "ratio": {"value": r, "target": TARGET_RATIO, "met": r is not None and r >= TARGET_RATIO},
        "all_above_baselines": {"value": all_, "best_baseline": best_name, "best_baseline_value": best,
                                "met": best is None or all_ > best},
    }
    order = [v for v in MODEL_VARIANTS if v in res and rule in res[v]]
    ordering = {}
    for key in ("first", "all"):
        values = {v: res[v][rule][key]["mean"] for v in order}
        ranked = sorted(values, key=lambda v: -values[v])
        ordering[key] = {"values": values, "ranked": ranked, "paper_order_holds": ranked == [v for v in MODEL_VARIANTS if v in values]}
    return {"rule": rule, "checks": checks, "met": all(c["met"] for c in checks.values()), "ordering": ordering, "baselines_all": baselines}


def build_report(ctx: Context, units: Sequence[Mapping[str, Any]], tasks: Sequence[Task]) -> dict[str, Any]:
    """The report's content (report.json) from the units."""
    dataset, cfg = ctx.dataset, ctx.config
    fc = ctx.train_config.features
    protocols = [protocol_summary(ctx, p, [u for u in units if u["protocol"] == p]) for p in ctx.folds if any(u["protocol"] == p for u in units)]
    grouped = next((p for p in protocols if p["key"] == GROUPED), None)
    class_tasks = [t for t in tasks if t.protocol == CLASSES]
    per_label = np.bincount(ctx.segments.labels, minlength=len(dataset.labels))
    return {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "dataset": {
            "root": str(dataset.root),
            "name": Path(dataset.root).name,
            "layout": dataset.layout,
            "labels": list(dataset.labels),
            "scenes": len(dataset.scenes),
            "recordings": len(dataset.recording_ids),
            "segments": len(ctx.segments),
            "segments_per_label": per_label.tolist(),
            "minutes": sum(s.duration_s for s in dataset.scenes) / 60.0,
            "chunk_seconds": dataset.chunk_seconds,
            "skipped_files": [str(p) for p, _ in dataset.skipped],
            "scenes_without_segments": [str(dataset.scenes[i].path) for i in ctx.scenes_without_segments],
        },
        "segment_seconds": fc.segment_seconds,
        "primary": PRIMARY,
        "method_titles": dict(METHOD_TITLES),
        "neighbours": list(cfg.neighbours),
        "k_max": cfg.k_max,
        "epochs": cfg.epochs or ctx.train_config.epochs,
        "protocols": protocols,
        "class_study": class_study_summary(ctx, [u for u in units if u["protocol"] == CLASSES], grouped, class_tasks[0].epochs if class_tasks else None),
        "target": target_check(grouped, cfg.neighbours[0]) if grouped else None,
    }
