"""Computing units: train a method on a task's scenes, export it, embed through ONNX, index, decide; in parallel.

Per task, each variant (audio, triplet, noattn) and the softmax baseline are trained on the fold's training
scenes only, exported to ONNX and read back with ``runtime.encoder.Encoder`` (the daemon's path); the
training segments are embedded into a ``SegmentIndex`` (hnswlib) and every test segment is classified from
its ``n`` nearest neighbours. Finished units are read from the cache instead (units.py).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Sequence

import numpy as np

from edge_asc.evaluation.config import NO_LEARNING, SOFTMAX, SOFTMAX_HEAD, SOFTMAX_NN
from edge_asc.evaluation.measures import unit_measures
from edge_asc.evaluation.plan import Context, Task, TaskData, task_cost, task_data
from edge_asc.evaluation.scoring import HEAD_RULE, RuleResult, decide, neighbour_rules, neighbour_vote
from edge_asc.evaluation.units import TrainingInfo, Unit, fingerprint, read_unit, unit_path, unit_train_config, write_unit
from edge_asc.training.batches import SceneSource, scene_refs
from edge_asc.training.datasets import SegmentSet

log = logging.getLogger(__name__)


def task_source(ctx: Context, task: Task, data: TaskData, train_labels: np.ndarray) -> SceneSource:
    """The training scenes of a task, as every method of the task trains on them.

    Their augmentation draws depend only on (the task's seed, the epoch, the scene and its partner), so the
    methods of a (fold, seed) train on identical augmented data (a paired comparison), and the feature cache
    (``ctx.cache``) computes each draw once: for the first method, and for every later method, resumed run or
    other job reading the same cache directory, it is read back (an in-memory cache, --no-cache, keeps only the
    clean features and the last draw: each method computes its draws again, the same bytes). Extraction runs in this process when the
    evaluation runs several jobs, else in a pool of one process per CPU.
    """
    config = unit_train_config(ctx.train_config, task, task.methods[0], threads=1)  # seed, augmentation, features
    recordings = ctx.dataset.scene_recordings()[data.train_scenes]
    workers = 1 if ctx.config.jobs > 1 else (os.cpu_count() or 1)
    return SceneSource(config, scene_refs(ctx.dataset, data.train_scenes), train_labels, recordings, ctx.cache, workers)


def evaluate_no_learning(ctx: Context, train: SegmentSet, y_train: np.ndarray, test: SegmentSet, y_test: np.ndarray, n_classes: int) -> list[RuleResult]:
    from edge_asc.evaluation.baselines import NoLearningBaseline

    cfg = ctx.config
    baseline = NoLearningBaseline.fit(train.features, y_train)
    n = min(max(cfg.neighbours), len(train))
    labels, distances = baseline.neighbours(test.features, n)  # (B, n) each
    return neighbour_rules(NO_LEARNING, labels, distances, test, y_test, n_classes, cfg.neighbours, cfg.k_max)


def evaluate_model(
    ctx: Context, task: Task, method: str, source: SceneSource, label_names: Sequence[str],
    train: SegmentSet, y_train: np.ndarray, test: SegmentSet, y_test: np.ndarray,
) -> tuple[list[RuleResult], TrainingInfo]:
    """Train ``method`` on the task's scenes, export it, index the training segments, decide the test scenes."""
    import torch

    from edge_asc.runtime.encoder import Encoder
    from edge_asc.runtime.index import SegmentIndex
    from edge_asc.training.export import export_onnx
    from edge_asc.training.train import fit

    cfg = ctx.config
    n_classes = len(label_names)
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    trained = fit(unit_train_config(ctx.train_config, task, method, cfg.threads), source, label_names, progress=False)
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
            emb_train, y_train, train.scene, train.recording, encoder.meta, cfg.index_m, cfg.index_ef_construction, cfg.index_ef,
            positions=train.position, threads=cfg.threads,
        )
    finally:
        onnx_path.unlink(missing_ok=True)
    n = min(max(cfg.neighbours), len(index))
    labels, distances, _ = index.query(emb_test, n)  # (B, n) each
    row = SOFTMAX_NN if method == SOFTMAX else method
    results = neighbour_rules(row, labels, distances, test, y_test, n_classes, cfg.neighbours, cfg.k_max)
    pred, dist = neighbour_vote(labels[:, : cfg.neighbours[0]], distances[:, : cfg.neighbours[0]], n_classes)  # the first rule's segment labels
    measures = unit_measures(emb_train, y_train, emb_test, y_test, pred, dist, test.scene, test.position, n_classes, cfg.k_max)
    if method == SOFTMAX:
        proba = trained.predict_proba(test.features)  # (B, C)
        pred = proba.argmax(axis=1).astype(np.int64)
        results.append(decide(SOFTMAX_HEAD, HEAD_RULE, pred, 1.0 - proba.max(axis=1), test, y_test, n_classes, cfg.k_max))
    last = trained.history[-1] if trained.history else None  # an EpochRecord
    info = TrainingInfo(
        train_s=train_s,
        embed_index_s=time.perf_counter() - t1,
        epochs=trained.epoch,
        final_loss=last.loss if last is not None else None,
        importance=last.importance if last is not None else None,
        embedding_size=int(encoder.meta.embedding_size),
        onnx_torch_max_abs_diff=onnx_diff,
        measures=measures,
    )
    return results, info


def _new_unit(ctx: Context, task: Task, method: str, data: TaskData, train: SegmentSet, test: SegmentSet, fp: str, wall_s: float,
              info: TrainingInfo | None, results: Sequence[RuleResult]) -> Unit:
    fold = ctx.fold_of(task)
    return Unit(
        task.unit_key(method), task.name, task.protocol, fold.name, task.fold, bool(fold.leaky), task.seed, method, task.classes,
        task.draw, data.label_names, len(train), len(test), int(data.train_scenes.size), int(data.test_scenes.size), fp, wall_s,
        info, tuple(results), fresh=True,
    )


def run_task(ctx: Context, task: Task) -> list[Unit]:
    """Every method of one task: cached units are read back, the others computed and written to the cache."""
    data = task_data(ctx, task)
    units, todo = [], []
    for method in task.methods:
        fp = fingerprint(ctx.config, ctx.train_config, ctx.data_sha256, task, method, data.train_scenes, data.test_scenes)
        cached = read_unit(unit_path(ctx.units_dir, task.unit_key(method)), fp)
        if cached is not None:
            units.append(cached)
        else:
            todo.append((method, fp))
    if not todo:
        return units
    train_labels = data.class_map[ctx.dataset.scene_labels()[data.train_scenes]]
    if data.test_scenes.size == 0 or np.unique(train_labels).size < 2:
        log.warning("%s: no test scene or fewer than 2 training classes in this fold; skipped", task.name)
        return units
    train, test = ctx.segments.of_scenes(data.train_scenes), ctx.segments.of_scenes(data.test_scenes)
    y_train, y_test = data.class_map[train.labels], data.class_map[test.labels]
    n_classes = len(data.label_names)
    source = None
    for method, fp in todo:
        t0 = time.perf_counter()
        info = None
        if method == NO_LEARNING:
            results = evaluate_no_learning(ctx, train, y_train, test, y_test, n_classes)
        else:
            source = source or task_source(ctx, task, data, train_labels)
            results, info = evaluate_model(ctx, task, method, source, data.label_names, train, y_train, test, y_test)
        unit = _new_unit(ctx, task, method, data, train, test, fp, time.perf_counter() - t0, info, results)
        write_unit(ctx.units_dir, unit)
        first = results[0]  # the first neighbour count of the method's own row
        log.info(
            "%s: first segment %.1f%%, all segments %.1f%% (%d test scenes) in %.0f s", unit.key,
            100 * first.decisions.first_accuracy(), 100 * first.decisions.all_accuracy(), first.decisions.n_scenes, unit.wall_s,
        )
        units.append(unit)
    return units


_CONTEXT: Context | None = None  # set in the parent before worker processes fork


def _run_task_in_worker(task: Task) -> tuple[str, list[Unit]]:
    if _CONTEXT is None:
        raise RuntimeError("evaluation worker started without its context (needs the fork start method)")
    return task.name, run_task(_CONTEXT, task)


def run_tasks(ctx: Context, tasks: Sequence[Task]) -> list[Unit]:
    """Every task, in ``ctx.config.jobs`` forked processes; logs progress with a rough time estimate.

    Returns the units in plan order, whatever order the workers finished in.
    """
    units: list[Unit] = []
    cost = {task.name: task_cost(task, ctx.n_classes) for task in tasks}
    total_cost, done_cost, done = sum(cost.values()), 0.0, 0
    t_start = time.perf_counter()

    def finished(name: str, task_units: list[Unit]) -> None:
        nonlocal done, done_cost
        done += 1
        done_cost += cost[name]
        units.extend(task_units)
        elapsed = time.perf_counter() - t_start
        eta = elapsed / done_cost * (total_cost - done_cost) if done_cost > 0 else 0.0  # rough: tasks differ in size
        log.info("[%d/%d] %s done; %.0f s elapsed, about %.0f s left", done, len(tasks), name, elapsed, eta)

    if ctx.config.jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            finished(task.name, run_task(ctx, task))
    else:
        _run_in_pool(ctx, tasks, finished)
    order = {task.unit_key(m): i for i, task in enumerate(tasks) for m in task.methods}
    units.sort(key=lambda u: order.get(u.key, len(order)))
    return units


def _run_in_pool(ctx: Context, tasks: Sequence[Task], finished: Callable[[str, list[Unit]], None]) -> None:
    global _CONTEXT
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    _CONTEXT = ctx  # forked workers inherit the data in memory (and the logging set up by the CLI)
    try:
        with ProcessPoolExecutor(max_workers=ctx.config.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {pool.submit(_run_task_in_worker, task): task for task in tasks}
            for future in as_completed(futures):
                finished(*future.result())
    finally:
        _CONTEXT = None
