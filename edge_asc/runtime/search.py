"""The base index and the enrolled places searched together, and where each found item came from.

``Searcher`` has the query interface of ``SegmentIndex`` (``query(x, k) -> labels, distances, ids``,
``labels``, ``len``), so the pipeline runs on either. Label ids: the model's labels first (in the model's
order), then enrolled labels that are not model labels, then ``unknown`` when ``enrolled_only`` is on, then
``silence`` when the silence gate is on (``silence``: load_artifacts turns it on unless
decision.silence_dbfs is null; the pipeline votes it for a segment quieter than
decision.silence_dbfs, runtime.pipeline: the index is not asked which place silence sounds like). Item
ids: the base index's 0..N-1, then the enrolled items N..N+M-1.

* Default mode: the k nearest of both sets (an enrolled item of a model label adds audio to that class).
* ``enrolled_only``: only enrolled items are candidates, and a neighbour too far from the segment counts
  as ``unknown``; so a segment whose nearest place is too far votes ``unknown``. Too far (the segment's
  ``bound``, kept in ``bounds`` after each query):
  - ``unknown_threshold`` given: farther than that one distance;
  - else ``unknown_ratio`` given (the daemon's default, UNKNOWN_RATIO): farther than ``unknown_ratio`` x
    the distance of the segment's nearest base-index item: the audio is more like the model's training
    data (other places) than like the enrolled place. A ratio test uses the other audio the device
    already has as negatives; bench/bench_enroll.py chose it over the per-place thresholds on unheard
    recordings (per-fold encoders, nested selection): keep 0.78 / unknown 0.81 against 0.78 / 0.69;
  - else farther than its place's threshold, calibrated from the enrolment audio (runtime.enrol).
  With no place enrolled (the last one forgotten while the daemon runs, or before the first enrolment)
  every segment is ``unknown``: its neighbours are ``unknown`` at the distances of its nearest base items,
  with item id -1 (no item to name); the daemon keeps running and picks up the next enrolment.

All distances here are squared L2 distances (the index's), and so are the thresholds and bounds; the ratio
test compares squared distances (a ratio r on squared distances is sqrt(r) on plain L2 distances).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from edge_asc.runtime.enrolled import SILENCE_LABEL, UNKNOWN_LABEL
from edge_asc.runtime.enrolled import EnrolledSet

log = logging.getLogger(__name__)

UNKNOWN_RATIO = 1.0  # the default ratio test: a place must be nearer than anything in the model's data (bench/bench_enroll.py)
ORIGIN_MODEL = "model"  # an item of the base index (the model's training data)
ORIGIN_ENROLLED = "enrolled"
_CHUNK = re.compile(r"#(\d+)$")  # scene ids of long recordings cut into chunks end in #<chunk>


@dataclass(frozen=True)
class Origin:
    """Where one item came from: a training recording, or an enrolment."""

    kind: str  # ORIGIN_MODEL | ORIGIN_ENROLLED
    label: str
    recording: str | None = None  # model: the training recording id
    offset_s: float | None = None  # seconds into the recording (model) or the enrolled audio
    enrolment: str | None = None  # enrolled: the enrolment's id
    enrolled_at: str | None = None  # enrolled: UTC time of the enrolment
    source: str | None = None  # enrolled: the file it came from, or "mic"
    threshold: float | None = None  # enrolled: its place's threshold now


class Searcher:
    """Base index + enrolled overlay, queried together (or the overlay alone with ``enrolled_only``)."""

    def __init__(
        self, base, enrolled: EnrolledSet | None = None, enrolled_only: bool = False, unknown_threshold: float | None = None,
        unknown_ratio: float | None = None, silence: bool = False,
    ) -> None:
        self.base = base
        self.enrolled = enrolled if enrolled is not None else EnrolledSet.empty(base.manifest.encoder_meta())
        self.enrolled_only = enrolled_only
        self.unknown_threshold = unknown_threshold
        self.unknown_ratio = None if unknown_threshold is not None else unknown_ratio
        self.bounds: np.ndarray | None = None  # enrolled_only: (B,) each query's bound (see the module's docstring)
        model_labels = tuple(base.labels)
        extra = tuple(x for x in self.enrolled.labels if x not in model_labels)
        self.labels: tuple[str, ...] = model_labels + extra + ((UNKNOWN_LABEL,) if enrolled_only else ())
        self.unknown_id = len(self.labels) - 1 if enrolled_only else None
        self.silence = silence
        if silence and SILENCE_LABEL not in self.labels:
            self.labels += (SILENCE_LABEL,)
        self.silence_id = self.labels.index(SILENCE_LABEL) if silence else None
        self._label_map = np.array([self.labels.index(x) for x in self.enrolled.labels], dtype=np.int64)
        t = self.enrolled.manifest.thresholds
        self.thresholds = np.array([t[x] if unknown_threshold is None else unknown_threshold for x in self.enrolled.labels], dtype=np.float32)
        if enrolled_only and not len(self.enrolled):
            log.warning("enrolled_only: no places are enrolled, so every segment is unknown; enrol one (edge-asc enroll --label NAME FILE)")
        fc = base.manifest.encoder_meta().feature_config
        self._segment_s = fc.segment_seconds
        self._chunk_s = float(base.manifest.dataset.get("chunk_seconds", 0.0) or 0.0)

    def with_enrolled(self, enrolled: EnrolledSet) -> "Searcher":
        """The same base index and options with another overlay (what the daemon swaps in on a reload)."""
        return Searcher(self.base, enrolled, self.enrolled_only, self.unknown_threshold, self.unknown_ratio, self.silence)

    def __len__(self) -> int:
        return len(self.enrolled) if self.enrolled_only else len(self.base) + len(self.enrolled)

    @property
    def max_neighbours(self) -> int:
        """The most neighbours ``query`` answers: the candidate items (enrolled_only with no place: the base
        index's, all of them ``unknown``)."""
        return len(self.base) if self.enrolled_only and not len(self.enrolled) else len(self)

    def set_ef(self, ef: int) -> None:
        self.base.set_ef(ef)

    def query(self, x: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x (B, D) -> labels (B, k), squared L2 distances (B, k) float32, item ids (B, k), nearest first."""
        if not 1 <= k <= self.max_neighbours:
            raise ValueError(f"k must be between 1 and the {self.max_neighbours} candidate items, got {k}")
        n_base = len(self.base)
        if self.enrolled_only and not len(self.enrolled):
            _, dist, _ = self.base.query(x, k)
            self.bounds = np.zeros(dist.shape[0], dtype=np.float32)  # no place to beat: nothing is near enough
            return np.full(dist.shape, self.unknown_id, dtype=np.int64), dist, np.full(dist.shape, -1, dtype=np.int64)
        if self.enrolled_only:
            lab, dist, ids = self.enrolled.query(x, k)
            if self.unknown_ratio is not None:
                _, base_dist, _ = self.base.query(x, 1)
                bound = np.broadcast_to(self.unknown_ratio * base_dist[:, :1], dist.shape)
            else:
                bound = self.thresholds[lab]
            labels = self._label_map[lab]
            labels[dist > bound] = self.unknown_id
            self.bounds = np.array(bound[:, 0], dtype=np.float32)
            return labels, dist, ids + n_base
        labels, dist, ids = self.base.query(x, min(k, n_base))
        if not len(self.enrolled):
            return labels, dist, ids
        el, ed, ei = self.enrolled.query(np.asarray(x, dtype=np.float32), min(k, len(self.enrolled)))
        labels = np.concatenate([labels, self._label_map[el]], axis=1)
        dist = np.concatenate([dist, ed], axis=1)
        ids = np.concatenate([ids, ei + n_base], axis=1)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        return tuple(np.take_along_axis(a, order, axis=1) for a in (labels, dist, ids))  # type: ignore[return-value]

    def origin(self, item: int) -> Origin:
        """Where item ``item`` (an id ``query`` returned) came from."""
        item = int(item)
        n_base = len(self.base)
        if item < n_base:
            recording, scene, position = self.base.item_source(item)
            chunk = _CHUNK.search(scene)
            offset = position * self._segment_s + (int(chunk.group(1)) * self._chunk_s if chunk else 0.0)
            return Origin(ORIGIN_MODEL, self.base.labels[self.base.item_labels[item]], recording=recording, offset_s=round(offset, 3))
        j = item - n_base
        e = self.enrolled.enrolment_of(j)
        lab = int(self.enrolled.item_labels[j])
        return Origin(
            ORIGIN_ENROLLED, self.enrolled.labels[lab], offset_s=round(float(self.enrolled.offsets[j]), 3), enrolment=e.id,
            enrolled_at=e.time, source=e.source, threshold=float(self.thresholds[lab]),
        )
