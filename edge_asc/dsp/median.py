"""Exact medians of a few planes with sorting networks (the harmonic/percussive median filters), and a
cheap sliding-window view.

A median of k values per element by ``np.median`` sorts every window; a fixed compare-exchange network
over k whole planes does the same with k log k vectorised minimum/maximum steps.
"""

from __future__ import annotations

import numpy as np


def window_view(a: np.ndarray, width: int, axis: int) -> np.ndarray:
    """``sliding_window_view(a, width, axis)`` for a C-contiguous 2-D array, without its per-call overhead."""
    a = np.ascontiguousarray(a)
    rows, cols = a.shape
    s0, s1 = a.strides
    if axis == 0:
        return np.ndarray((rows - width + 1, cols, width), a.dtype, a, 0, (s0, s1, s0))
    return np.ndarray((rows, cols - width + 1, width), a.dtype, a, 0, (s0, s1, s1))


# Median selection networks: compare-exchange pairs (i, j) after which p[i] <= p[j]; afterwards p[k // 2]
# is the median of the k inputs (checked for every 0/1 input in tests/dsp/test_median.py). Elementwise
# np.minimum/np.maximum over whole planes beat a per-row sort; other kernel sizes fall back to a sort.
MEDIAN_NETWORKS = {
    3: ((0, 1), (1, 2), (0, 1)),
    7: ((0, 5), (0, 3), (1, 6), (2, 4), (0, 1), (3, 5), (2, 6), (2, 3), (3, 6), (4, 5), (1, 4), (1, 3), (3, 4)),
    9: (
        (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8),
        (0, 3), (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
    ),
}  # fmt: skip


def median_plan(k: int) -> tuple[tuple[int, int, bool, bool], ...] | None:
    """The network for k inputs pruned to what the median needs: (i, j, keep min in i, keep max in j)."""
    network = MEDIAN_NETWORKS.get(k)
    if network is None:
        return None
    live, ops = {k // 2}, []
    for i, j in reversed(network):
        need_min, need_max = i in live, j in live
        if need_min or need_max:
            ops.append((i, j, need_min, need_max))
            live |= {i, j}
    return tuple(reversed(ops))


def median_of(planes: list[np.ndarray], plan: tuple[tuple[int, int, bool, bool], ...] | None) -> np.ndarray:
    """Elementwise exact median of k equally shaped arrays (mean of the two middles if k is even)."""
    if plan is None:
        return _median_last_axis(np.stack(planes, axis=-1))
    p = list(planes)
    for i, j, need_min, need_max in plan:
        a, b = p[i], p[j]
        if need_min:
            p[i] = np.minimum(a, b)
        if need_max:
            p[j] = np.maximum(a, b)
    return p[len(p) // 2]


def _median_last_axis(v: np.ndarray) -> np.ndarray:
    """Exact median over the last axis of a non-negative float64 array (mean of the two middles if even).

    Non-negative IEEE doubles order like their int64 bit patterns, and sorting int64 is faster; the
    selected values are returned bit for bit.
    """
    k = v.shape[-1]
    s = np.sort(np.ascontiguousarray(v).view(np.int64), axis=-1).view(np.float64)
    if k % 2:
        return s[..., k // 2]
    return 0.5 * (s[..., k // 2] + s[..., k // 2 - 1])
