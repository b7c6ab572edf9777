"""Which items of a labelled set to keep when an index is capped per label (numpy only)."""

from __future__ import annotations

import numpy as np


def select_per_label(labels: np.ndarray, recordings: np.ndarray, max_items_per_label: int, seed: int = 0) -> np.ndarray:
    """Sorted item indices keeping at most ``max_items_per_label`` items of each label.

    labels, recordings: (N,) int64. Within a label, items are drawn round-robin over its recordings (a
    random item of each recording in turn, seeded), so every recording keeps a share.
    """
    if isinstance(max_items_per_label, bool) or not isinstance(max_items_per_label, (int, np.integer)) or max_items_per_label < 1:
        raise ValueError(f"max_items_per_label must be a positive integer, got {max_items_per_label!r}")
    labels, recordings = np.asarray(labels, dtype=np.int64), np.asarray(recordings, dtype=np.int64)
    n = labels.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    shuffle = np.random.default_rng(seed).permutation(n)
    # rank of each item among the items of its (label, recording), in shuffled order
    order = shuffle[np.lexsort((recordings[shuffle], labels[shuffle]))]
    group = labels[order] * (int(recordings.max()) + 1) + recordings[order]
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    # per label: lowest ranks first (one item of each recording, then a second...), ties in shuffled order
    tiebreak = np.empty(n, dtype=np.int64)
    tiebreak[shuffle] = np.arange(n)
    by_label = np.lexsort((tiebreak, rank, labels))
    label_sorted = labels[by_label]
    first = np.searchsorted(label_sorted, label_sorted, side="left")
    return np.sort(by_label[np.arange(n) - first < max_items_per_label]).astype(np.int64)
