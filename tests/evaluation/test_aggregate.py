"""Means and standard deviations over units, the first/all ratio, the confusion matrix and per-class accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asc.evaluation.aggregate import (
    ProtocolSummary, RuleSummary, baselines_all, confusion_matrix, per_class_accuracy, ratio, row_normalise, summarise,
    summarise_decisions, variant_orderings,
)
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


def _rule(first: float, all_: float) -> RuleSummary:
    return RuleSummary(summarise([first]), summarise([all_]), ratio(first, all_), summarise([]), (), 0, summarise([]), 1)


def _protocol(results: dict[str, dict[str, RuleSummary]]) -> ProtocolSummary:
    return ProtocolSummary("grouped", "", False, (), (0,), results, {}, {}, {}, None)


def test_the_variants_are_ranked_and_the_papers_order_is_checked_on_first_and_all_segments():
    protocol = _protocol({
        "audio": {"nn1": _rule(0.5, 0.6), "nn5": _rule(0.1, 0.1)},
        "triplet": {"nn1": _rule(0.4, 0.7)},
        "noattn": {"nn1": _rule(0.3, 0.65)},
        "softmax-nn": {"nn1": _rule(0.9, 0.9)},  # a baseline, not a variant
    })
    o = variant_orderings(protocol, "nn1")
    assert o.first.values == {"audio": 0.5, "triplet": 0.4, "noattn": 0.3}
    assert o.first.ranked == ("audio", "triplet", "noattn") and o.first.paper_order_holds
    assert o.all.ranked == ("triplet", "noattn", "audio") and not o.all.paper_order_holds
    assert variant_orderings(protocol, "nn5").first.values == {"audio": 0.1}  # only the variants that have the rule


def test_the_baselines_all_segments_accuracy_is_keyed_by_row_and_rule_in_report_order():
    protocol = _protocol({
        "audio": {"nn1": _rule(0.5, 0.6)},
        "nolearn": {"nn1": _rule(0.2, 0.3), "nn5": _rule(0.2, 0.35)},
        "softmax-head": {"head": _rule(0.4, 0.45)},
        "softmax-nn": {"nn1": _rule(0.4, 0.5)},
    })
    got = baselines_all(protocol)
    assert got == {"softmax-nn (nn1)": 0.5, "softmax-head (head)": 0.45, "nolearn (nn1)": 0.3, "nolearn (nn5)": 0.35}
    assert list(got) == ["softmax-nn (nn1)", "softmax-head (head)", "nolearn (nn1)", "nolearn (nn5)"]
