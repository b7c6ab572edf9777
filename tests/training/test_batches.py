"""Class-balanced batches and the input normalisation (training/batches.py)."""

from __future__ import annotations

import numpy as np

from edge_asc.training.batches import class_balanced_batches, normalization
from edge_asc.training.config import TrainConfig


def test_batches_hold_as_many_items_of_each_drawn_class_and_cover_small_classes():
    labels = np.array([0] * 1010 + [1] * 30)  # a large and a small class
    cfg = TrainConfig(batch_size=16, classes_per_batch=2)
    batches = class_balanced_batches(labels, cfg, np.random.default_rng(0))
    assert len(batches) == 65 and all(b.shape == (16,) for b in batches)
    for b in batches:
        assert np.sum(labels[b] == 0) == 8 and np.sum(labels[b] == 1) == 8  # every batch: 8 of each class
    items = np.concatenate(batches)
    assert len(np.unique(items[labels[items] == 1])) == 30  # every item of the small class is drawn


def test_batches_are_seeded_and_leave_out_classes_with_a_single_item():
    labels = np.array([0, 0, 0, 1, 1, 2])
    cfg = TrainConfig(batch_size=4, classes_per_batch=2)
    a = class_balanced_batches(labels, cfg, np.random.default_rng(5))
    b = class_balanced_batches(labels, cfg, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert 5 not in np.concatenate(a)  # class 2 has no positive for its one item


def test_normalisation_is_the_mean_and_std_over_every_window():
    feats = np.random.default_rng(0).normal(5.0, 2.0, (50, 20, 52)).astype(np.float32)
    mean, std = normalization(feats)
    np.testing.assert_allclose(mean, feats.reshape(-1, 52).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, feats.reshape(-1, 52).std(0), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32
