import dataclasses
import json

import numpy as np
import pytest

from edge_asc.evaluation.measures import ADAPTIVE, WINDOW, UnitMeasures, latency_curve, scene_streams, unit_measures


def _point(points, mode, k):
    return next(p for p in points if (p.mode, p.k) == (mode, k))


def test_unanimous_scenes_are_decided_right_and_adaptive_decides_once_the_majority_is_certain():
    pred = np.zeros(30, np.int64)  # one scene of class 0, every segment voting 0
    points = latency_curve(pred, np.ones(30), pred, np.zeros(30, np.int64), np.arange(30), 2, 5)
    assert [(p.mode, p.k) for p in points] == [(WINDOW, k) for k in range(1, 6)] + [(ADAPTIVE, k) for k in range(2, 6)]
    assert all(p.accuracy == 1.0 for p in points)
    assert _point(points, WINDOW, 5).segments == 5 and _point(points, WINDOW, 5).decisions == 6
    assert _point(points, ADAPTIVE, 5).segments == 3  # 3 of 5 unanimous votes cannot be overturned
    assert _point(points, ADAPTIVE, 4).segments == 3  # 2-0 with 2 to come could still tie: a third vote is needed


def test_accuracy_weighs_each_decision_by_the_segments_it_used():
    # class 1; segments 1,1,1 then 0,1,0,1,0: adaptive k_max 5 decides 1 after 3 segments (right), then 0 after 5 (wrong)
    pred = np.array([1, 1, 1, 0, 1, 0, 1, 0])
    p = _point(latency_curve(pred, np.ones(8), np.ones(8, np.int64), np.zeros(8, np.int64), np.arange(8), 2, 5), ADAPTIVE, 5)
    assert (p.decisions, p.segments, p.accuracy) == (2, 4.0, pytest.approx(3 / 8))


def test_scene_streams_put_each_scenes_segments_in_stream_order():
    scene, position = np.array([7, 3, 7, 3, 7]), np.array([2, 1, 0, 0, 1])
    pred = np.array([72, 31, 70, 30, 71])
    streams = scene_streams(pred, pred.astype(float), np.array([1, 0, 1, 0, 1]), scene, position)
    assert [(c, list(p)) for c, p, _ in streams] == [(0, [30, 31]), (1, [70, 71, 72])]


def test_unit_measures_round_trip_through_json_and_report_no_auroc_for_one_class():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 4)).astype(np.float32)
    y = np.zeros(20, np.int64)
    m = unit_measures(emb, y, emb[:6], y[:6], y[:6], np.ones(6), np.zeros(6, np.int64), np.arange(6), 1, 3)
    assert m.novelty_auroc is None and m.novelty_per_class == ()  # no held-out class to compare with
    assert UnitMeasures.from_json(json.loads(json.dumps(dataclasses.asdict(m)))) == m
