"""Scene decisions: the daemon's vote over the first k and over all segments, in stream order; neighbour votes."""

from __future__ import annotations

import json

import numpy as np

from edge_asc.evaluation.scoring import SceneDecisions, neighbour_vote, scene_decisions
from edge_asc.runtime.decision import DecisionPolicy, Vote


def test_a_scene_takes_the_majority_and_a_tie_goes_to_the_smaller_distance():
    # scene 0: labels 1,1,2 -> 1; scene 1: 0 vs 2 tied 1:1 at k=2, 2 has the smaller distance
    pred = np.array([1, 1, 2, 0, 2, 2])
    dist = np.array([0.1, 0.1, 0.1, 0.9, 0.2, 0.5])
    label = np.array([1, 1, 1, 2, 2, 2])
    scene = np.array([0, 0, 0, 1, 1, 1])
    pos = np.array([0, 1, 2, 0, 1, 2])
    d = scene_decisions(pred, dist, label, scene, pos, n_classes=3, k_max=3)
    assert d.scene.tolist() == [0, 1]
    assert d.truth.tolist() == [1, 2]
    assert d.first_k.tolist() == [[1, 1, 1], [0, 2, 2]]
    assert d.all.tolist() == [1, 2]
    assert d.n_segments.tolist() == [3, 3]
    # an exact tie in votes and distance goes to the earlier label
    d = scene_decisions(np.array([2, 1]), np.array([0.5, 0.5]), np.array([1, 1]), np.array([7, 7]), np.array([0, 1]), 3, 2)
    assert d.first_k.tolist() == [[2, 1]]


def test_segments_are_voted_in_stream_order_and_short_scenes_vote_over_what_they_have():
    # positions given out of order; the first segment is position 0 whatever the row order
    pred = np.array([2, 0, 1])
    pos = np.array([2, 0, 1])
    d = scene_decisions(pred, np.ones(3), np.zeros(3, dtype=int), np.zeros(3, dtype=int), pos, 3, k_max=5)
    assert d.first_k[0, 0] == 0  # position 0 predicted 0
    assert d.first_k[0, 1] == 0  # {0, 1} tied, equal distances -> earlier label
    assert d.first_k[0, 2:].tolist() == [0, 0, 0]  # k >= 3: all three segments, a three-way tie -> label 0
    assert d.all[0] == 0


def test_the_first_k_decision_is_the_daemons_window_decision():
    """first_k[:, k-1] equals the first decision of the daemon's DecisionPolicy(k, window) on the same votes."""
    rng = np.random.default_rng(3)
    n_classes, n_scenes, n_seg, k_max = 4, 40, 7, 7
    pred = rng.integers(0, n_classes, n_scenes * n_seg)
    dist = rng.choice([0.1, 0.2, 0.3], n_scenes * n_seg)  # repeated values make distance ties too
    scene = np.repeat(np.arange(n_scenes), n_seg)
    pos = np.tile(np.arange(n_seg), n_scenes)
    truth = np.repeat(rng.integers(0, n_classes, n_scenes), n_seg)
    d = scene_decisions(pred, dist, truth, scene, pos, n_classes, k_max)
    for s in range(n_scenes):
        rows = np.flatnonzero(scene == s)
        for k in range(1, k_max + 1):
            policy = DecisionPolicy(n_classes, k=k, mode="window")
            decision = None
            for i in range(k):
                r = rows[i]
                decision = policy.push(Vote(i, int(pred[r]), float(dist[r]), 0, 0, 0.0)) or decision
            assert decision is not None and decision.label == d.first_k[s, k - 1], (s, k)


def test_a_segment_takes_the_vote_of_its_neighbours_and_the_distance_of_the_nearest_winner():
    labels = np.array([[2, 0, 0], [1, 2, 0], [0, 1, 1]])
    dists = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.9, 0.2, 0.4]])
    pred, dist = neighbour_vote(labels[:, :1], dists[:, :1], 3)
    assert pred.tolist() == [2, 1, 0] and np.allclose(dist, [0.1, 0.1, 0.9])
    pred, dist = neighbour_vote(labels, dists, 3)
    # row 0: 0 has two votes; row 1: three-way tie -> smallest distance (1); row 2: 1 wins, nearest of it 0.2
    assert pred.tolist() == [0, 1, 1]
    assert np.allclose(dist, [0.2, 0.1, 0.2])


def test_decisions_give_their_accuracies_and_survive_a_json_round_trip():
    a = SceneDecisions(np.arange(4), np.array([0, 1, 1, 0]), np.array([[0, 0], [1, 1], [0, 1], [1, 1]]), np.array([0, 1, 1, 1]), np.full(4, 5))
    assert a.first_k_accuracy().tolist() == [0.5, 0.75]
    assert a.first_accuracy() == 0.5 and a.all_accuracy() == 0.75
    back = SceneDecisions.from_json(json.loads(json.dumps(a.to_json())))
    assert np.array_equal(back.first_k, a.first_k) and np.array_equal(back.all, a.all) and np.array_equal(back.n_segments, a.n_segments)
