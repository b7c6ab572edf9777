"""Per-label capping of an item set (edge_asc.runtime.select)."""

from __future__ import annotations

import numpy as np

from edge_asc.runtime.select import select_per_label


def test_select_per_label_keeps_at_most_the_cap_spread_over_recordings():
    labels = np.array([0] * 100 + [1] * 10 + [2] * 40)
    recordings = np.array([0] * 90 + [1] * 10 + [2] * 10 + [3] * 20 + [4] * 20)  # label 0: 90 + 10 items
    keep = select_per_label(labels, recordings, 20, seed=1)
    assert np.all(np.diff(keep) > 0)
    counts = np.bincount(labels[keep], minlength=3)
    assert counts.tolist() == [20, 10, 20]
    # label 0: both recordings get half, although recording 0 holds 90 % of its items
    assert np.bincount(recordings[keep][labels[keep] == 0]).tolist() == [10, 10]
    np.testing.assert_array_equal(keep, select_per_label(labels, recordings, 20, seed=1))
    assert not np.array_equal(keep, select_per_label(labels, recordings, 20, seed=2))
