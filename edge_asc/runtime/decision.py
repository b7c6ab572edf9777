"""Turning per-segment labels into scene decisions: a majority vote over k segments.

Modes:

* ``window``: a decision after every k segments, over those k (segments 0..k-1, then k..2k-1, ...).
* ``sliding``: once k segments have been heard, a decision after every segment, over the last k.
* ``adaptive``: a decision as soon as the vote is safe, at the latest after ``k_max`` segments; then a
  fresh vote. Safe: the leader's lead over the runner-up is larger than the segments still to come up
  to k_max, so no run of later segments could change the majority. An adaptive decision is therefore
  exactly the decision a ``window`` vote over k_max segments would reach on the same audio, only
  sooner when the segments agree (after 3 of k_max=5 unanimous segments, 6 of 10). ``k`` is not used.

Tie-break (``distance``, the default): among the labels with the most votes, the one whose votes have
the smallest summed distance to their nearest neighbours wins; if that is also equal, the label that
comes first in the model's label list. ``label_order`` skips the distance step. Confidence is the
winner's share of the k votes. Evidence: the EVIDENCE_ITEMS nearest items (origin, distance, bound) among
the votes for the winner, which the scene event turns into neighbours with their origin. Each vote carries
its item's origin, resolved when the segment was heard (runtime.pipeline), never an item id: item ids are
only valid in the index searched then, and the enrolled overlay can be swapped (and renumbered by a
``forget``) before the decision. The same vote (``vote``) turns a segment's n nearest neighbours into the
segment's label when more than one neighbour is asked for.

k, mode and k_max can be changed while running (``set``, ``set_k``, ``set_mode``, from any thread): the
change takes effect at the next segment, and ``set`` changes them in one step; votes already heard are
kept, except that switching to ``window`` or ``adaptive`` starts a fresh vote. A new k_max applies to the
adaptive vote in progress (its votes so far count towards the new limit).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from dataclasses import dataclass
from typing import Hashable

import numpy as np

MODES = ("window", "sliding", "adaptive")
TIE_BREAKS = ("distance", "label_order")
MAX_K = 100  # the longest vote the daemon accepts (30 s of audio)
DEFAULT_K_MAX = 10  # adaptive: the most segments one decision waits for
EVIDENCE_ITEMS = 3  # nearest items a decision reports for its label


def vote(labels: np.ndarray, distances: np.ndarray, n_labels: int, tie_break: str = "distance") -> tuple[int, np.ndarray]:
    """Majority label of ``labels`` (n,) int with ``distances`` (n,); returns (label, votes per label (n_labels,))."""
    counts = np.bincount(labels, minlength=n_labels)
    top = counts == counts.max()
    if tie_break == "distance" and np.count_nonzero(top) > 1:
        sums = np.bincount(labels, weights=distances, minlength=n_labels)
        sums[~top] = np.inf
        return int(np.argmin(sums)), counts  # argmin takes the first (earliest label) of equal sums
    return int(np.argmax(top)), counts  # first label with the most votes


@dataclass(frozen=True)
class Vote:
    """One segment's contribution to a decision."""

    index: int  # segment number in the stream
    label: int
    distance: float
    start: int  # stream sample of the segment's first sample (model rate)
    end: int  # stream sample after its last sample
    ready: float  # monotonic time its last sample entered the ring buffer
    origin: Hashable | None = None  # where the item behind the label (its nearest with that label) came from (runtime.search.Origin); None: not known
    bound: float | None = None  # enrolled_only: the distance the nearest place had to beat (runtime.search)


Evidence = tuple[Hashable, float, "float | None"]  # one item behind a decision: (origin, distance, the vote's bound)


@dataclass(frozen=True)
class Decision:
    label: int
    confidence: float  # votes for the label / k
    votes: tuple[int, ...]  # votes per label, in model label order
    k: int  # segments used (adaptive: as many as the vote needed)
    mode: str
    first_segment: int
    last_segment: int
    start: int  # stream sample of the first sample used
    end: int  # stream sample after the last sample used
    ready: float  # monotonic time the last sample of the last segment entered the ring buffer
    evidence: tuple[Evidence, ...] = ()  # (origin, distance, bound) nearest first, from the votes for ``label``


def evidence(used: list[Vote], label: int) -> tuple[Evidence, ...]:
    """The EVIDENCE_ITEMS nearest distinct items among the votes for ``label``, each with the bound of the
    vote that heard it nearest."""
    best: dict[Hashable, Vote] = {}
    for u in used:
        if u.label == label and u.origin is not None and (u.origin not in best or u.distance < best[u.origin].distance):
            best[u.origin] = u
    nearest = sorted(best.values(), key=lambda u: u.distance)[:EVIDENCE_ITEMS]
    return tuple((u.origin, u.distance, u.bound) for u in nearest)


FRESH_VOTE_MODES = ("window", "adaptive")  # switching to one of these starts a fresh vote


class DecisionPolicy:
    """Majority vote over k segments, in window or sliding mode."""

    def __init__(self, n_labels: int, k: int = 3, mode: str = "window", tie_break: str = "distance", k_max: int = DEFAULT_K_MAX) -> None:
        if n_labels < 1:
            raise ValueError(f"need at least one label, got {n_labels}")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break {tie_break!r} is not accepted; accepted values: {', '.join(TIE_BREAKS)}")
        check_k(k)
        check_mode(mode)
        check_k(k_max, "k_max")
        self.n_labels = n_labels
        self.tie_break = tie_break
        self._k, self._mode, self._k_max = k, mode, k_max
        self._pending: tuple[int, str, int] | None = None  # set/set_k/set_mode from other threads, applied at the next push
        self._lock = threading.Lock()
        self._history: deque[Vote] = deque(maxlen=MAX_K)
        self._since = 0  # segments since the last decision (window mode)

    @property
    def k(self) -> int:
        with self._lock:
            return self._pending[0] if self._pending else self._k

    @property
    def mode(self) -> str:
        with self._lock:
            return self._pending[1] if self._pending else self._mode

    @property
    def k_max(self) -> int:
        with self._lock:
            return self._pending[2] if self._pending else self._k_max

    def set_k(self, k: int) -> None:
        self.set(k=k)

    def set_mode(self, mode: str) -> None:
        self.set(mode=mode)

    def set(self, k: int | None = None, mode: str | None = None, k_max: int | None = None) -> None:
        """Change k, mode and/or k_max (None: keep) as one update: the next segment sees all or none.

        Every value is checked (check_k, check_mode) before anything changes.
        """
        if k is not None:
            check_k(k)
        if mode is not None:
            check_mode(mode)
        if k_max is not None:
            check_k(k_max, "k_max")
        with self._lock:
            old = self._pending or (self._k, self._mode, self._k_max)
            self._pending = (old[0] if k is None else k, old[1] if mode is None else mode, old[2] if k_max is None else k_max)

    def reset(self) -> None:
        """Forget the votes heard (after a gap in the audio)."""
        self._history.clear()
        self._since = 0

    def relabel(self, new_ids: list[int], n_labels: int) -> None:
        """The label list changed (an enrolled place added or forgotten while running): ``new_ids[old id]``
        is each old label's new id, -1 for a label that is gone. Votes heard are kept under their new ids;
        if a vote's label is gone the votes are dropped (as after a gap: ``reset``)."""
        self.n_labels = n_labels
        mapping = np.asarray(new_ids, dtype=np.int64)
        if any(mapping[v.label] < 0 for v in self._history):
            self.reset()
            return
        self._history = deque((dataclasses.replace(v, label=int(mapping[v.label])) for v in self._history), maxlen=MAX_K)

    def _apply_pending(self) -> None:
        with self._lock:
            if self._pending is None:
                return
            k, mode, k_max = self._pending
            self._pending = None
        if mode in FRESH_VOTE_MODES and self._mode != mode:
            self._since = 0  # a fresh window
        self._k, self._mode, self._k_max = k, mode, k_max

    def push(self, v: Vote) -> Decision | None:
        """Add one segment's vote; returns a decision when one is due."""
        self._apply_pending()
        self._history.append(v)
        self._since += 1
        k = self._k
        if self._mode == "adaptive":
            k = self._since
            labels = np.fromiter((u.label for u in list(self._history)[-k:]), dtype=np.int64, count=k)
            if k < self._k_max and not safe(np.bincount(labels, minlength=self.n_labels), self._k_max - k):
                return None
            self._since = 0
        elif self._mode == "window":
            if self._since < k:
                return None
            self._since = 0
        elif len(self._history) < k:
            return None
        used = list(self._history)[-k:]
        labels = np.fromiter((u.label for u in used), dtype=np.int64, count=k)
        dists = np.fromiter((u.distance for u in used), dtype=np.float64, count=k)
        label, counts = vote(labels, dists, self.n_labels, self.tie_break)
        return Decision(
            label=label,
            confidence=float(counts[label]) / k,
            votes=tuple(int(c) for c in counts),
            k=k,
            mode=self._mode,
            first_segment=used[0].index,
            last_segment=used[-1].index,
            start=used[0].start,
            end=used[-1].end,
            ready=used[-1].ready,
            evidence=evidence(used, label),
        )


def safe(counts: np.ndarray, remaining: int) -> bool:
    """The leader of ``counts`` stays the strict leader whatever the ``remaining`` votes are (all of them
    could go to the runner-up)."""
    top = np.sort(counts)[::-1]
    second = top[1] if top.size > 1 else 0
    return bool(top[0] > second + remaining)


def check_k(k: int, name: str = "k") -> int:
    """The one rule for k, wherever it comes from (config file, flag, socket request): 1 to MAX_K.
    The error names ``name`` (``set.k`` for a socket request)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"{name}: must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


def check_mode(mode: str, name: str = "mode") -> str:
    """The one rule for the decision mode: one of MODES."""
    if mode not in MODES:
        raise ValueError(f"{name}: {mode!r} is not accepted; accepted values: {', '.join(MODES)}")
    return mode
