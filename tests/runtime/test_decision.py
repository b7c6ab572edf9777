"""The decision policy: window and sliding votes over k segments, tie breaks, k and mode changed at run time."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asc.runtime.decision import Decision, DecisionPolicy, Vote, vote

# --- decision policy --------------------------------------------------------------------------------


def _votes(labels, dists=None):
    dists = dists or [0.1] * len(labels)
    return [Vote(i, lab, d, i * 4800, (i + 1) * 4800, float(i)) for i, (lab, d) in enumerate(zip(labels, dists))]


def _run(policy, votes):
    return [d for v in votes if (d := policy.push(v)) is not None]


def test_window_mode_decides_every_k_segments_over_those_k():
    out = _run(DecisionPolicy(3, k=3, mode="window"), _votes([0, 0, 1, 2, 2, 2, 1]))
    assert [(d.label, d.first_segment, d.last_segment, d.votes) for d in out] == [(0, 0, 2, (2, 1, 0)), (2, 3, 5, (0, 0, 3))]
    assert out[0].confidence == pytest.approx(2 / 3) and out[1].confidence == 1.0
    assert (out[0].start, out[0].end, out[0].ready) == (0, 3 * 4800, 2.0)


def test_sliding_mode_decides_after_every_segment_over_the_last_k():
    out = _run(DecisionPolicy(3, k=2, mode="sliding"), _votes([0, 1, 1, 2]))
    assert [(d.first_segment, d.last_segment) for d in out] == [(0, 1), (1, 2), (2, 3)]
    assert out[1].label == 1 and out[1].confidence == 1.0


def test_tie_break_smallest_summed_distance_then_earlier_label():
    labels = np.array([2, 1, 2, 1])
    assert vote(labels, np.array([0.1, 0.5, 0.1, 0.5]), 3)[0] == 2  # 0.2 < 1.0
    assert vote(labels, np.array([0.3, 0.3, 0.3, 0.3]), 3)[0] == 1  # equal sums: the earlier label
    assert vote(labels, np.array([0.1, 0.5, 0.1, 0.5]), 3, "label_order")[0] == 1
    out = _run(DecisionPolicy(3, k=2, mode="window"), _votes([2, 0], [0.2, 0.9]))
    assert out[0].label == 2 and out[0].confidence == 0.5


def test_k_and_mode_change_at_run_time():
    policy = DecisionPolicy(2, k=3, mode="window")
    assert _run(policy, _votes([0, 0])) == []
    policy.set_k(1)
    assert policy.k == 1
    d = policy.push(Vote(2, 1, 0.1, 0, 1, 0.0))
    assert isinstance(d, Decision) and d.k == 1 and d.label == 1
    policy.set_mode("sliding")
    policy.set_k(2)
    d = policy.push(Vote(3, 1, 0.1, 0, 1, 0.0))
    assert (d.mode, d.k, d.first_segment, d.last_segment) == ("sliding", 2, 2, 3)
    with pytest.raises(ValueError, match="k: must be an integer from 1 to 100"):
        policy.set_k(0)
    with pytest.raises(ValueError, match="accepted values: window, sliding"):
        policy.set_mode("vote")


def test_set_changes_k_and_mode_in_one_step():
    policy = DecisionPolicy(2, k=3, mode="window")
    policy.set(k=2, mode="sliding")
    assert policy._pending == (2, "sliding", 10)  # one pending update: the worker sees both or neither
    assert (policy.k, policy.mode) == (2, "sliding")
    policy.set(mode="window")
    assert policy._pending == (2, "window", 10)  # None keeps the other value
    with pytest.raises(ValueError, match="accepted values: window, sliding"):
        policy.set(k=5, mode="vote")
    assert (policy.k, policy.mode) == (2, "window")  # a bad value changes nothing, not even the good one
    d = policy.push(Vote(0, 1, 0.1, 0, 1, 0.0))
    assert d is None and policy._pending is None
    d = policy.push(Vote(1, 1, 0.1, 0, 1, 0.0))
    assert (d.k, d.mode) == (2, "window")


def test_a_decision_carries_the_nearest_distinct_items_that_voted_for_its_label():
    votes = [Vote(i, lab, d, 0, 1, 0.0, item) for i, (lab, d, item) in enumerate([(0, 0.5, "a"), (1, 0.1, "b"), (0, 0.2, "c"), (0, 0.3, "c"), (0, 0.9, "d")])]
    (decision,) = _run(DecisionPolicy(2, k=5, mode="window"), votes)
    assert decision.label == 0 and decision.evidence == (("c", 0.2, None), ("a", 0.5, None), ("d", 0.9, None))  # "b" voted for 1
    assert _run(DecisionPolicy(2, k=1), _votes([1]))[0].evidence == ()  # votes without items: no evidence


# --- adaptive mode -------------------------------------------------------------------------------------


def _decide_all(policy, labels, dists=None):
    return [d for d in (policy.push(v) for v in _votes(labels, dists)) if d is not None]


def test_adaptive_decides_as_soon_as_unanimous_votes_cannot_be_overturned():
    decisions = _decide_all(DecisionPolicy(3, mode="adaptive", k_max=5), [1, 1, 1, 2, 2, 2])
    assert [(d.label, d.k, d.first_segment, d.last_segment) for d in decisions] == [(1, 3, 0, 2), (2, 3, 3, 5)]
    assert decisions[0].mode == "adaptive" and decisions[0].confidence == 1.0


def test_adaptive_waits_for_k_max_when_the_vote_stays_open():
    decisions = _decide_all(DecisionPolicy(3, mode="adaptive", k_max=4), [0, 1, 0, 1, 2])
    assert [(d.k, d.last_segment) for d in decisions] == [(4, 3)]


@pytest.mark.parametrize("seed", range(20))
def test_every_adaptive_decision_is_the_k_max_window_vote_over_the_same_segments(seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=200, p=[0.55, 0.25, 0.15, 0.05])
    dists = rng.random(200)
    k_max = int(rng.integers(2, 12))
    for d in _decide_all(DecisionPolicy(4, mode="adaptive", k_max=k_max), labels.tolist(), dists.tolist()):
        assert 1 <= d.k <= k_max
        full = slice(d.first_segment, min(d.first_segment + k_max, len(labels)))
        if full.stop - full.start == k_max:
            assert d.label == vote(labels[full], dists[full], 4)[0]


def test_switching_to_adaptive_starts_a_fresh_vote():
    policy = DecisionPolicy(3, k=5, mode="sliding", k_max=3)
    _decide_all(policy, [0, 0])
    policy.set(mode="adaptive")
    d = _decide_all(policy, [2, 2, 2])
    assert [(x.label, x.k, x.votes) for x in d] == [(2, 2, (0, 0, 2))]  # the two sliding votes for 0 were not counted


def test_a_bad_k_max_is_refused_naming_it():
    with pytest.raises(ValueError, match="k_max"):
        DecisionPolicy(3, mode="adaptive", k_max=0)
    policy = DecisionPolicy(3, mode="window", k_max=4)
    with pytest.raises(ValueError, match="k_max: must be an integer from 1 to 100, got 101"):
        policy.set(mode="adaptive", k_max=101)
    assert (policy.mode, policy.k_max) == ("window", 4)  # a bad k_max changes nothing, not even the good mode


def test_set_k_max_changes_the_adaptive_limit_from_the_next_segment():
    policy = DecisionPolicy(2, mode="adaptive", k_max=5)
    assert _decide_all(policy, [0, 1]) == []  # 1-1 after 2 of 5: not safe yet
    policy.set(k_max=3)
    assert policy.k_max == 3
    (d,) = _decide_all(policy, [1])  # 1 leads 2-1 with no segment left to 3: decided
    assert (d.label, d.k, d.votes) == (1, 3, (1, 2))
    policy.set(k_max=2)
    (d,) = _decide_all(policy, [0, 1])  # 1-1 after 2 of 2: decided by the distance tie-break, never waiting longer
    assert d.k == 2


def test_relabel_keeps_the_votes_under_their_new_ids_and_drops_them_when_a_label_is_gone():
    policy = DecisionPolicy(3, k=3)
    _decide_all(policy, [1, 1])
    policy.relabel([0, 2, 1], 4)  # old 1 -> new 2
    (d,) = _decide_all(policy, [2])
    assert d.label == 2 and d.votes == (0, 0, 3, 0)
    _decide_all(policy, [1, 0])
    policy.relabel([0, -1, 1, 2], 3)  # label 1 is gone: the pending votes are dropped, as after a gap
    assert _decide_all(policy, [0]) == []


def test_each_evidence_item_carries_the_bound_of_the_vote_that_heard_it_nearest():
    # two votes of one item at the same distance with different bounds: the first heard is the evidence
    votes = [Vote(0, 0, 0.4, 0, 1, 0.0, "a", 0.3), Vote(1, 0, 0.2, 0, 1, 0.0, "b", 0.1), Vote(2, 0, 0.2, 0, 1, 0.0, "b", 0.15)]
    (decision,) = _run(DecisionPolicy(1, k=3, mode="window"), votes)
    assert decision.evidence == (("b", 0.2, 0.1), ("a", 0.4, 0.3))  # a lone Decision.bound before, matched by float equality
