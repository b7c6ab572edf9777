"""Feature extraction jobs, run in this process or in a pool of worker processes, into the feature cache.

A job is one scene's clean features or one (scene, draw) of its augmented features. A worker reads the
scene's audio (and its mixing partner's) itself, augments it with the draw's counter-based generator
(``streams.stream_rng(seed, AUGMENT_STREAM, draw, scene.seed_key)``), extracts the features and writes the
cache entry; only the row count travels back (the array itself when the cache is in memory). The same
function runs in the parent when ``workers`` is 1, so serial and parallel extraction give the same bytes.
The pool uses the "spawn" start method: no torch or thread state of the parent is inherited.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_asc.dsp.audio_io import AudioFileError
from edge_asc.dsp.features import FeatureConfig, FeatureExtractor
from edge_asc.training.augment import Augmenter
from edge_asc.training.config import AugmentConfig
from edge_asc.training.datasets import SegmentSet
from edge_asc.training.feature_cache import FeatureCache, clean_key
from edge_asc.training.scenes import SceneRef, scene_refs
from edge_asc.training.streams import AUGMENT_STREAM, stream_rng

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0  # progress lines when stderr is not a terminal
JOBS_PER_CHUNK = 8  # jobs handed to a worker at a time


@dataclass(frozen=True)
class Job:
    """One cache entry to compute: a scene's clean features (draw None) or one augmentation draw of it."""

    key: str
    scene: SceneRef
    partner: SceneRef | None = None
    draw: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class Outcome:
    key: str
    rows: int  # segments in the entry (0 when the audio could not be decoded)
    error: str | None = None  # why the audio could not be read (nothing is cached then)
    features: np.ndarray | None = None  # only for an in-memory cache
    failure: str | None = None  # any other error of the job, naming the scene (the run fails once the other jobs are done)


class ExtractionError(RuntimeError):
    """Jobs that failed other than by undecodable audio; raised once every other job is done and cached."""


def scene_name(scene: SceneRef) -> str:
    """How a message names a scene: its file and cut, or the in-memory waveform's key."""
    if scene.path is None:
        return f"in-memory scene {scene.key[:12]}"
    return f"{scene.path} [{scene.start}, {scene.stop})"


class Worker:
    """What a job needs besides itself: the settings and the cache directory (one per process)."""

    def __init__(self, features: FeatureConfig, augment: AugmentConfig, cache_dir: Path | None) -> None:
        self.features = features
        self.extractor = FeatureExtractor(features)
        self.augmenter = Augmenter(augment, features.sample_rate, features.segment_samples)
        self.cache = FeatureCache(cache_dir)

    def compute(self, job: Job) -> np.ndarray:
        """The job's (n, frames, features) float32 features."""
        sr = self.features.sample_rate
        x = job.scene.load(sr)
        if job.draw is not None:
            other = job.partner.load(sr) if job.partner is not None else None
            x = self.augmenter.scene(x, other, stream_rng(job.seed, AUGMENT_STREAM, job.draw, job.scene.seed_key))
        return self.extractor.signal_features(x)

    def run(self, job: Job) -> Outcome:
        """The job done (its entry written when the cache is on disk); an error is returned, not raised."""
        try:
            feats = self.compute(job)
            if not self.cache.on_disk:
                return Outcome(job.key, int(feats.shape[0]), features=feats)
            self.cache.put(job.key, feats)
            return Outcome(job.key, int(feats.shape[0]))
        except AudioFileError as exc:
            return Outcome(job.key, 0, str(exc))
        except Exception as exc:  # a bug or a full disk: named, and the other jobs go on
            what = f"draw {job.draw} of " if job.draw is not None else ""
            return Outcome(job.key, 0, failure=f"{what}{scene_name(job.scene)}: {type(exc).__name__}: {exc}")



_WORKER: Worker | None = None  # set in each pool process by _init_worker


def _init_worker(features: FeatureConfig, augment: AugmentConfig, cache_dir: Path | None) -> None:
    global _WORKER
    _WORKER = Worker(features, augment, cache_dir)


def _run_job(job: Job) -> Outcome:
    if _WORKER is None:
        raise RuntimeError("extraction worker started without its settings")
    return _WORKER.run(job)


class Progress:
    """A tqdm bar on a terminal, else a log line every LOG_EVERY_S seconds and one at the end."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.done = total, what, 0
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=what, unit="scene", leave=False)
            except ImportError:  # tqdm is in the train extra; without it, log lines
                self.bar = None

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif time.perf_counter() - self.last > LOG_EVERY_S:
            self.last = time.perf_counter()
            log.info("%s: %d of %d", self.what, self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        log.info("%s: %d in %.1f s", self.what, self.done, time.perf_counter() - self.t0)


def run_jobs(jobs: Sequence[Job], cache: FeatureCache, features: FeatureConfig, augment: AugmentConfig, workers: int = 1,
             what: str = "extracting features") -> list[Outcome]:
    """Compute every job into ``cache`` (in ``workers`` processes when > 1); returns their outcomes in job order.

    A scene whose audio cannot be decoded is logged by name and gets no entry (its outcome holds the error).
    A job failing otherwise does not stop the others: once they are all done (and cached), ExtractionError
    names the failed scenes. If the pool itself fails, the jobs not yet started are cancelled.
    """
    if not jobs:
        return []
    progress = Progress(len(jobs), what)
    outcomes: list[Outcome] = []
    try:
        if workers <= 1 or len(jobs) == 1:
            worker = Worker(features, augment, cache.directory)
            for job in jobs:
                outcomes.append(worker.run(job))
                progress.step()
        else:
            outcomes = _run_in_pool(jobs, features, augment, cache.directory, min(workers, len(jobs)), progress)
    finally:
        progress.close()
    failures = [o.failure for o in outcomes if o.failure is not None]
    for outcome in outcomes:
        if outcome.error is not None:
            log.warning("feature extraction: %s; the scene is left out", outcome.error)
        elif outcome.features is not None:
            cache.put(outcome.key, outcome.features)
    for failure in failures:
        log.error("feature extraction failed: %s", failure)
    if failures:
        more = f" (and {len(failures) - 1} more, logged above)" if len(failures) > 1 else ""
        raise ExtractionError(f"feature extraction failed for {failures[0]}{more}")
    return outcomes


def _run_in_pool(jobs: Sequence[Job], features: FeatureConfig, augment: AugmentConfig, cache_dir: Path | None, n: int,
                 progress: Progress) -> list[Outcome]:
    """The outcomes of ``jobs`` computed in ``n`` spawned processes; on an error of the pool itself (a worker
    killed), the jobs not started are cancelled before it is raised."""
    ctx = multiprocessing.get_context("spawn")
    outcomes: list[Outcome] = []
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(features, augment, cache_dir))
    try:
        for outcome in pool.map(_run_job, jobs, chunksize=max(1, min(JOBS_PER_CHUNK, len(jobs) // (4 * n)))):
            outcomes.append(outcome)
            progress.step()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return outcomes


def fill(jobs: Sequence[Job], cache: FeatureCache, features: FeatureConfig, augment: AugmentConfig, workers: int = 1,
         what: str = "extracting features") -> None:
    """Compute the jobs that have no cache file yet (files present are checked when read, and rebuilt if corrupt)."""
    run_jobs([j for j in jobs if not cache.has(j.key)], cache, features, augment, workers, what)


def entries(jobs: Sequence[Job], cache: FeatureCache, features: FeatureConfig, augment: AugmentConfig, workers: int = 1,
            what: str = "extracting features", errors: dict[str, str] | None = None) -> list[np.ndarray]:
    """The cache entries of ``jobs`` in order, computing the missing ones; a scene that cannot be decoded gets no
    rows (and its key -> the reason goes into ``errors`` when given)."""
    outcomes = run_jobs([j for j in jobs if cache.get(j.key) is None], cache, features, augment, workers, what)
    if errors is not None:
        errors.update({o.key: o.error for o in outcomes if o.error is not None})
    empty = np.zeros((0, features.frames_per_segment, features.n_features), dtype=np.float32)
    return [e if (e := cache.get(j.key)) is not None else empty for j in jobs]


def clean_entries(scenes: Sequence[SceneRef], cache: FeatureCache, features: FeatureConfig, workers: int = 1,
                  errors: dict[str, str] | None = None) -> list[np.ndarray]:
    """Every scene's clean (n_i, frames, features) features from the cache (memory-mapped when on disk)."""
    jobs = [Job(clean_key(s.key, features), s) for s in scenes]
    return entries(jobs, cache, features, AugmentConfig.off(), workers, f"extracting {len(jobs)} scenes", errors)


def cached_segments(dataset, indices: Sequence[int] | None, cache: FeatureCache, features: FeatureConfig, workers: int = 1) -> SegmentSet:
    """``datasets.extract_segments`` through the feature cache: the clean features of the given scenes (all when None)."""
    if features.sample_rate != dataset.sample_rate:
        raise ValueError(f"extractor runs at {features.sample_rate} Hz but the dataset was loaded at {dataset.sample_rate} Hz")
    idx = np.arange(len(dataset.scenes), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    refs, errors = scene_refs(dataset, idx), {}
    parts = clean_entries(refs, cache, features, workers, errors)
    for i, ref in zip(idx, refs):  # an undecodable file joins the dataset's skipped files, as extract_segments does
        path = dataset.scenes[i].path
        if clean_key(ref.key, features) in errors and all(p != path for p, _ in dataset.skipped):
            dataset.skipped.append((path, errors[clean_key(ref.key, features)].removeprefix(f"{path}: ")))
    counts = np.array([p.shape[0] for p in parts], dtype=np.int64)
    scene = np.repeat(idx, counts)
    position = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if counts.size else np.zeros(0, dtype=np.int64)
    feats = np.concatenate(parts) if parts else np.zeros((0, features.frames_per_segment, features.n_features), dtype=np.float32)
    log.info("%d segments from %d scenes", scene.shape[0], idx.shape[0])
    return SegmentSet(feats, dataset.scene_labels()[scene], scene, dataset.scene_recordings()[scene], position, dataset.labels,
                      dataset.recording_ids)
