"""Turning per-segment labels into scene decisions: a majority vote over k segments.

Modes:

* ``window``: a decision after every k segments, over those k (segments 0..k-1, then k..2k-1, ...).
* ``sliding``: once k segments have been heard, a decision after every segment, over the last k.

Tie-break (``distance``, the default): among the labels with the most votes, the one whose votes have
the smallest summed distance to their nearest neighbours wins; if that is also equal, the label that
comes first in the model's label list. ``label_order`` skips the distance step. Confidence is the
winner's share of the k votes. Evidence: the EVIDENCE_ITEMS nearest items (id, distance) among the votes
for the winner, which the scene event turns into neighbours with their origin. The same vote (``vote``) turns a segment's n nearest neighbours into
the segment's label when more than one neighbour is asked for.

k and mode can be changed while running (``set``, ``set_k``, ``set_mode``, from any thread): the change
takes effect at the next segment, and ``set`` changes both in one step; votes already heard are kept,
except that switching to ``window`` starts a fresh window.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

MODES = ("window", "sliding")
TIE_BREAKS = ("distance", "label_order")
MAX_K = 100  # the longest vote the daemon accepts (30 s of audio)
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
    item: int = -1  # the index item behind the label (its nearest with that label); -1: not known


@dataclass(frozen=True)
class Decision:
    label: int
    confidence: float  # votes for the label / k
    votes: tuple[int, ...]  # votes per label, in model label order
    k: int
    mode: str
    first_segment: int
    last_segment: int
    start: int  # stream sample of the first sample used
    end: int  # stream sample after the last sample used
    ready: float  # monotonic time the last sample of the last segment entered the ring buffer
    evidence: tuple[tuple[int, float], ...] = ()  # (item, distance) nearest first, from the votes for ``label``


def evidence(used: list[Vote], label: int) -> tuple[tuple[int, float], ...]:
    """The EVIDENCE_ITEMS nearest distinct items among the votes for ``label``."""
    best: dict[int, float] = {}
    for u in used:
        if u.label == label and u.item >= 0 and u.distance < best.get(u.item, float("inf")):
            best[u.item] = u.distance
    return tuple(sorted(best.items(), key=lambda kv: kv[1])[:EVIDENCE_ITEMS])


class DecisionPolicy:
    """Majority vote over k segments, in window or sliding mode."""

    def __init__(self, n_labels: int, k: int = 3, mode: str = "window", tie_break: str = "distance") -> None:
        if n_labels < 1:
            raise ValueError(f"need at least one label, got {n_labels}")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break {tie_break!r} is not accepted; accepted values: {', '.join(TIE_BREAKS)}")
        check_k(k)
        check_mode(mode)
        self.n_labels = n_labels
        self.tie_break = tie_break
        self._k, self._mode = k, mode
        self._pending: tuple[int, str] | None = None  # set_k/set_mode from other threads, applied at the next push
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

    def set_k(self, k: int) -> None:
        self.set(k=k)

    def set_mode(self, mode: str) -> None:
        self.set(mode=mode)

    def set(self, k: int | None = None, mode: str | None = None) -> None:
        """Change k and/or mode (None: keep) as one update: the next segment sees both or neither.

        Both values are checked before anything changes.
        """
        if k is not None:
            check_k(k)
        if mode is not None:
            check_mode(mode)
        with self._lock:
            old_k, old_mode = self._pending or (self._k, self._mode)
            self._pending = (old_k if k is None else k, old_mode if mode is None else mode)

    def reset(self) -> None:
        """Forget the votes heard (after a gap in the audio)."""
        self._history.clear()
        self._since = 0

    def _apply_pending(self) -> None:
        with self._lock:
            if self._pending is None:
                return
            k, mode = self._pending
            self._pending = None
        if mode == "window" and self._mode != "window":
            self._since = 0  # a fresh window
        self._k, self._mode = k, mode

    def push(self, v: Vote) -> Decision | None:
        """Add one segment's vote; returns a decision when one is due."""
        self._apply_pending()
        self._history.append(v)
        self._since += 1
        k = self._k
        if self._mode == "window":
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
