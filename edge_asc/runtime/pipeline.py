"""Audio -> segment labels -> scene decisions, one segment at a time; shared by ``run`` and ``classify``.

``Pipeline.push(block)`` takes mono float32 samples at the model's rate, cuts them into 300 ms
segments with their left context (features.Segmenter), and for each complete segment computes the
features (FeatureExtractor.segment_features), its embedding (Encoder.embed, batch of 1) and its nearest
labelled neighbours (SegmentIndex.query). The segment's label is its nearest neighbour's (or the
majority of ``neighbours`` neighbours), and the DecisionPolicy turns segment labels into scene
decisions. Silence gate: a segment whose own samples (not its left context) are quieter than
``silence_dbfs`` (segment_dbfs: one mean of squares per segment; digital silence is -inf, below any
gate) votes the index's ``silence`` label (runtime.search.SILENCE_LABEL) at distance 0 with no item,
whatever its neighbours are; None switches the gate off, and so does an index without that label. The
offline ``classify`` and the live daemon call the same code with the same samples, so
they produce the same decisions whatever the block sizes.

``Conditioner`` (edge_asc.dsp.condition, imported here for the daemon's worker) is the step before: any
source's (frames, channels) blocks at its rate -> mono at the model's rate, the one path files and
devices both take.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from edge_asc.dsp.condition import Conditioner  # noqa: F401  (the daemon's worker takes it from here)
from edge_asc.dsp.features import FeatureExtractor, Segmenter
from edge_asc.runtime.decision import Decision, DecisionPolicy, Vote, vote

log = logging.getLogger(__name__)

STAGES = ("features", "encoder", "search", "total")
TIMING_WINDOW = 1024  # segments kept for the status event's median / p99
BULK_SEGMENTS = 64  # segments per feature pass, encoder call and index query on the bulk path (bench/bench_classify.py)
SILENCE_DBFS = -90.0  # decision.silence_dbfs's default: a segment quieter votes ``silence``; bench/bench_silence.py: the
# quietest ambient13 segment is -80.4 dBFS (10 dB above), 16-bit dither about -101 dBFS (11 dB below)


def segment_dbfs(x: np.ndarray) -> float:
    """The level of samples ``x`` in dBFS: RMS against full scale 1.0; digital silence is -inf."""
    power = float(np.dot(x, x)) / x.size if x.size else 0.0  # one pass, no temporary array
    return 10.0 * math.log10(power) if power > 0.0 else -math.inf


@dataclass(frozen=True)
class SegmentResult:
    index: int  # segment number in the stream
    label: int
    distance: float  # to the nearest neighbour with that label
    neighbour_labels: tuple[int, ...]  # the n nearest neighbours, nearest first
    neighbour_distances: tuple[float, ...]
    neighbour_ids: tuple[int, ...]  # item ids in the index searched (edge_asc.runtime.search.Searcher.origin)
    item: int  # the nearest neighbour with the segment's label; -1: none (enrolled_only with no place enrolled; silence)
    start: int  # stream sample of the segment's first sample (model rate)
    end: int  # stream sample after its last sample
    ready: float  # monotonic time its last sample entered the ring buffer
    timings: tuple[float, float, float, float]  # seconds: features, encoder, search, total
    bound: float | None = None  # enrolled_only: the distance its nearest place had to beat (runtime.search)
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)  # (D,) the segment's embedding (what an enrolment from the stream keeps)


class StageTimes:
    """The last TIMING_WINDOW per-stage processing times, for medians and p99s."""

    def __init__(self, size: int = TIMING_WINDOW) -> None:
        self._t = np.zeros((size, len(STAGES)), dtype=np.float64)
        self._n = 0

    def add(self, times: tuple[float, ...]) -> None:
        self._t[self._n % self._t.shape[0]] = times
        self._n += 1

    @property
    def count(self) -> int:
        return self._n

    def summary_ms(self) -> dict[str, dict[str, float | None]]:
        """stage -> {"median", "p99"} in milliseconds (None before any segment)."""
        if self._n == 0:
            return {s: {"median": None, "p99": None} for s in STAGES}
        t = self._t[: min(self._n, self._t.shape[0])] * 1000.0
        med = np.median(t, axis=0)
        p99 = np.percentile(t, 99, axis=0)
        return {s: {"median": round(float(med[i]), 4), "p99": round(float(p99[i]), 4)} for i, s in enumerate(STAGES)}


class Pipeline:
    """Features -> encoder -> index search -> decision policy, per 300 ms segment."""

    def __init__(self, encoder, index, policy: DecisionPolicy, neighbours: int = 1, silence_dbfs: float | None = SILENCE_DBFS) -> None:
        problem = neighbours_problem(neighbours, index)
        if problem:
            raise ValueError(problem)
        self.encoder = encoder
        self.index = index
        self.policy = policy
        self.neighbours = neighbours
        self.silence_dbfs = silence_dbfs  # decision.silence_dbfs; None: no gate
        self.labels: tuple[str, ...] = tuple(index.labels)  # the model's, then enrolled ones (runtime.search)
        self.feature_config = cfg = encoder.meta.feature_config
        self.sample_rate = cfg.sample_rate
        self.extractor = FeatureExtractor(cfg)
        self.segmenter = Segmenter(cfg)
        self.times = StageTimes()
        self._sample_offset = 0  # stream samples before the current segmenter (after restarts)
        self._index_offset = 0
        self._batch = np.zeros((1,) + (cfg.frames_per_segment, cfg.n_features), dtype=np.float32)

    @property
    def segments_done(self) -> int:
        return self._index_offset + self.segmenter.segments_done

    @property
    def samples_in(self) -> int:
        return self._sample_offset + self.segmenter.samples_in

    @property
    def run_start(self) -> int:
        """Stream sample where the current run of audio began (0, or the last ``restart``): the left
        context of the segments before it is zeros, not audio."""
        return self._sample_offset

    def restart(self) -> None:
        """A gap in the audio (a lost source came back): fresh left context and fresh votes; times go on."""
        self._sample_offset += self.segmenter.samples_in
        self._index_offset += self.segmenter.segments_done
        self.segmenter = Segmenter(self.feature_config)
        self.policy.reset()

    def swap_index(self, index) -> bool:
        """Search ``index`` from the next segment on (call between segments, from the thread that pushes).
        Votes already heard are kept under their label names (DecisionPolicy.relabel), with the origins
        they were heard with. Never raises (it runs on the daemon's worker): an index that cannot answer
        ``neighbours`` neighbours is not swapped in (False, and a warning); callers check it first
        (``neighbours_problem``)."""
        problem = neighbours_problem(self.neighbours, index)
        if problem:
            log.warning("the new index is not used, the previous one stays: %s", problem)
            return False
        labels = tuple(index.labels)
        self.policy.relabel([labels.index(x) if x in labels else -1 for x in self.labels], len(labels))
        self.index, self.labels = index, labels
        return True

    def push(self, block: np.ndarray, ready: float | None = None) -> Iterator[tuple[SegmentResult, Decision | None]]:
        """Feed mono samples at the model's rate; yields (segment, decision or None) per completed segment.

        ``ready`` is the monotonic time the block entered the ring buffer (now if not given).
        """
        ready = time.monotonic() if ready is None else ready
        for i, x in self.segmenter.push(block):
            yield from self._decide([self.process_segment(self._index_offset + i, x, ready)])

    def push_bulk(self, block: np.ndarray, most: int = BULK_SEGMENTS) -> Iterator[tuple[SegmentResult, Decision | None]]:
        """``push`` for a file (the offline ``classify``): up to ``most`` segments per feature pass, encoder
        call and index query, with the same segments, labels, distances and decisions as ``push`` gives for
        the same samples, whatever the block sizes (each step computes a segment's numbers as for one
        segment alone: FeatureExtractor.run_features, encoder.BATCH_INVARIANCE, per-query index searches)."""
        ready = time.monotonic()
        for first, x, count in self.segmenter.push_runs(block, most):
            yield from self._decide(self.process_run(self._index_offset + first, x, count, ready))

    def _decide(self, segments: list[SegmentResult]) -> Iterator[tuple[SegmentResult, Decision | None]]:
        for seg in segments:
            origin = self.index.origin(seg.item) if seg.item >= 0 and hasattr(self.index, "origin") else None
            yield seg, self.policy.push(Vote(seg.index, seg.label, seg.distance, seg.start, seg.end, seg.ready, origin, seg.bound))

    def process_segment(self, index: int, x: np.ndarray, ready: float) -> SegmentResult:
        """x: (context_samples + segment_samples,) -> the segment's label, distance and neighbours."""
        t0 = time.perf_counter()
        self._batch[0] = self.extractor.segment_features(x)  # (20, 52)
        return self._search(index, self._batch, x, ready, t0)[0]

    def process_run(self, first: int, x: np.ndarray, count: int, ready: float) -> list[SegmentResult]:
        """x: the first segment's left context and ``count`` consecutive segments -> their results (the
        bulk path; each segment's timings are the run's divided by ``count``)."""
        t0 = time.perf_counter()
        return self._search(first, self.extractor.run_features(x, count), x, ready, t0)

    def _search(self, first: int, features: np.ndarray, x: np.ndarray, ready: float, t0: float) -> list[SegmentResult]:
        """features (B, 20, 52) of segments first.. (x: their samples, with the first one's left context)."""
        t1 = time.perf_counter()
        emb = self.encoder.embed(features)  # (B, D)
        t2 = time.perf_counter()
        labels, distances, ids = self.index.query(emb, self.neighbours)  # (B, n) each
        t3 = time.perf_counter()
        count = features.shape[0]
        times = tuple(t / count for t in (t1 - t0, t2 - t1, t3 - t2, t3 - t0))
        bounds = getattr(self.index, "bounds", None)
        seg_len, ctx = self.feature_config.segment_samples, self.feature_config.context_samples
        out = []
        for j in range(count):
            self.times.add(times)
            samples = x[ctx + j * seg_len : ctx + (j + 1) * seg_len]
            bound = None if bounds is None else float(bounds[j])
            out.append(self._result(first + j, samples, labels[j], distances[j], ids[j], emb[j], ready, times, bound))
        return out

    def _result(self, index: int, samples: np.ndarray, labels: np.ndarray, distances: np.ndarray, ids: np.ndarray,
                emb: np.ndarray, ready: float, times: tuple[float, ...], bound: float | None) -> SegmentResult:
        """One segment's label from its neighbours (and the silence gate on its own ``samples``)."""
        if self.neighbours == 1:
            label, nearest = int(labels[0]), 0
        else:
            label, _ = vote(labels, distances.astype(np.float64), len(self.labels), self.policy.tie_break)
            nearest = int(np.argmax(labels == label))  # nearest neighbour with that label
        silence_id = getattr(self.index, "silence_id", None)
        if silence_id is not None and self.silence_dbfs is not None and segment_dbfs(samples) < self.silence_dbfs:
            label, nearest = silence_id, -1  # below the gate: silence, whatever it sounds nearest to
        seg_len = self.feature_config.segment_samples
        start = self._sample_offset + (index - self._index_offset) * seg_len
        return SegmentResult(
            index=index,
            label=label,
            distance=0.0 if nearest < 0 else float(distances[nearest]),
            neighbour_labels=tuple(int(v) for v in labels),
            neighbour_distances=tuple(float(v) for v in distances),
            neighbour_ids=tuple(int(v) for v in ids),
            item=-1 if nearest < 0 else int(ids[nearest]),
            start=start,
            end=start + seg_len,
            ready=ready,
            timings=times,
            bound=bound,
            embedding=emb,
        )


def neighbours_problem(neighbours: int, index) -> str | None:
    """Why ``index`` cannot answer ``neighbours`` neighbours per segment (a one-line message), or None.
    A Searcher says how many it can answer (``max_neighbours``: an enrolled-only one with no place still
    answers ``unknown``); another index, as many as it has items."""
    most = getattr(index, "max_neighbours", None)
    most = len(index) if most is None else most
    if 1 <= neighbours <= most:
        return None
    return f"neighbours (decision.neighbours) must be from 1 to the index's {most} items, got {neighbours}"


def load_artifacts(
    model_path: str | Path, index_path: str | Path, threads: int = 1, ef: int | None = None,
    enrolled_path: str | Path | None = None, enrolled_only: bool = False, unknown_threshold: float | None = None,
    unknown_ratio: float | None = None, silence: bool = True,
):
    """The encoder and the index that matches it, with the enrolled places at ``enrolled_path`` (if any)
    searched beside it (runtime.search.Searcher, with the ``silence`` label unless ``silence`` is False: the
    gate is off, decision.silence_dbfs null); raises ArtifactError / ArtifactMismatch naming the fault."""
    from edge_asc.runtime.encoder import Encoder
    from edge_asc.runtime.enrolled import EnrolledSet
    from edge_asc.runtime.index import SegmentIndex
    from edge_asc.runtime.search import Searcher

    encoder = Encoder(model_path, threads=threads)
    index = SegmentIndex.load(index_path, encoder.meta)
    if ef is not None:
        index.set_ef(ef)
    enrolled = EnrolledSet.load_or_empty(enrolled_path, encoder.meta) if enrolled_path is not None else None
    return encoder, Searcher(index, enrolled, enrolled_only, unknown_threshold, unknown_ratio, silence)


def classify_stream(pipeline: Pipeline, blocks: Iterator[np.ndarray], bulk: bool = True) -> Iterator[tuple[SegmentResult, Decision | None]]:
    """Run a whole stream of mono model-rate blocks through the pipeline (the offline path: in bulk, unless
    ``bulk`` is False, the daemon's one segment at a time; the same results either way)."""
    for block in blocks:
        yield from (pipeline.push_bulk(block) if bulk else pipeline.push(block))
