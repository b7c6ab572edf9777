"""Means and standard deviations over units, the first/all ratio, the confusion matrix and per-class accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asc.evaluation.aggregate import confusion_matrix, per_class_accuracy, ratio, row_normalise, summarise, summarise_decisions
from edge_asc.evaluation.scoring import SceneDecisions


def test_a_summary_is_the_mean_and_sample_standard_deviation():
    s = summarise([0.5, 0.7])
    assert (s.mean, s.std, s.n, s.values) == (pytest.approx(0.6), pytest.approx(np.std([0.5, 0.7], ddof=1)), 2, (0.5, 0.7))
    assert summarise([0.4]).std == 0.0
    assert summarise([]).mean is None
    assert ratio(0.45, 0.5) == pytest.approx(0.9)
    assert ratio(0.3, 0.0) is None


def test_a_rule_summary_averages_units_and_takes_the_ratio_of_the_means():
    a = SceneDecisions(np.arange(4), np.array([0, 1, 1, 0]), np.array([[0, 0], [1, 1], [0, 1], [1, 1]]), np.array([0, 1, 1, 1]), np.full(4, 5))
    b = SceneDecisions(np.arange(2), np.array([1, 1]), np.array([[1, 1], [0, 0]]), np.array([1, 1]), np.full(2, 5))
    s = summarise_decisions([a, b], [0.6, 0.8])
    assert s.first.values == (0.5, 0.5)
    assert s.all.values == (0.75, 1.0)
    assert s.ratio == pytest.approx(0.5 / 0.875)
    assert [x.mean for x in s.first_k] == pytest.approx([0.5, 0.625])
    assert s.scenes == 6 and s.units == 2
    assert s.segment.mean == pytest.approx(0.7)
    with pytest.raises(ValueError):
        summarise_decisions([])


def test_confusion_rows_are_true_classes_and_per_class_shares_skip_absent_classes():
    truth = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    m = confusion_matrix(truth, pred, 4)
    assert m.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert np.allclose(row_normalise(m).sum(axis=1), [1, 1, 1, 0])
    d = SceneDecisions(np.arange(6), truth, pred[:, None], truth.copy(), np.ones(6, dtype=int))
    pc = per_class_accuracy([d], 4, "nn1")
    assert pc.scenes == (2, 3, 1, 0)
    assert pc.first == (0.5, pytest.approx(2 / 3), 1.0, None)
    assert pc.all == (1.0, 1.0, 1.0, None)
    assert pc.rule == "nn1"
