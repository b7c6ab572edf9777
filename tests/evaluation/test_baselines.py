"""The no-learning baseline: exact neighbours on standardised segment statistics of the training side only."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asc.evaluation.baselines import NoLearningBaseline, Standardiser, exact_neighbours, segment_statistics


def test_exact_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    train, query = rng.normal(size=(300, 6)), rng.normal(size=(40, 6))
    idx, dist = exact_neighbours(train, query, 4)
    full = ((query[:, None] - train[None]) ** 2).sum(-1)
    assert np.array_equal(idx, np.argsort(full, axis=1)[:, :4])
    assert np.allclose(dist, np.sort(full, axis=1)[:, :4], atol=1e-4)
    with pytest.raises(ValueError):
        exact_neighbours(train, query, 301)


def test_no_learning_baseline_uses_training_statistics_only():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(10, 20, 52)).astype(np.float32)
    stats = segment_statistics(feats)
    assert stats.shape == (10, 104)
    assert np.allclose(stats[:, :52], feats.mean(axis=1), atol=1e-5)
    assert np.allclose(stats[:, 52:], feats.std(axis=1), atol=1e-5)
    std = Standardiser.fit(stats[:6])
    assert np.allclose(std.apply(stats[:6]).mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(std.mean, stats[:6].mean(axis=0), atol=1e-5)  # not the test rows
    labels = np.arange(6) % 3
    base = NoLearningBaseline.fit(feats[:6], labels)
    got, dist = base.neighbours(feats[:6], 1)
    assert got[:, 0].tolist() == labels.tolist() and np.allclose(dist, 0.0, atol=1e-4)  # each is its own neighbour
