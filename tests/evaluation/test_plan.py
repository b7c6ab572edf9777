"""The plan: every fold x seed x method once, the class study's subsets, and folds without segment-less scenes."""

from __future__ import annotations

import numpy as np

from edge_asc.evaluation.config import CLASSES, GROUPED, LEAKY, EvalConfig
from edge_asc.evaluation.plan import plan_tasks, without_empty_scenes
from edge_asc.training.datasets import Fold

CONFIG = EvalConfig(folds=3, seeds=2, variants=("audio",), k_max=3, neighbours=(1, 3), class_sizes=(2,), class_draws=1, leaky=True, leaky_seeds=2)


def test_the_plan_covers_every_fold_seed_and_method():
    tasks = plan_tasks(CONFIG, n_classes=3, n_grouped_folds=3, train_epochs=7)
    grouped = [t for t in tasks if t.protocol == GROUPED]
    assert len(grouped) == 6 and {(t.fold, t.seed) for t in grouped} == {(f, s) for f in range(3) for s in range(2)}
    assert all(t.epochs == 7 for t in tasks)
    assert [t.methods for t in grouped if t.seed == 0][0] == ("audio", "softmax", "nolearn")  # no-learning: once per fold
    assert [t.methods for t in grouped if t.seed == 1][0] == ("audio", "softmax")
    assert len([t for t in tasks if t.protocol == LEAKY]) == 2
    classes = [t for t in tasks if t.protocol == CLASSES]
    assert len(classes) == 1 and len(classes[0].classes) == 2 and classes[0].fold_protocol == GROUPED
    assert len({t.unit_key(m) for t in tasks for m in t.methods}) == sum(len(t.methods) for t in tasks)  # unit keys are unique


def test_scenes_without_segments_leave_every_fold():
    folds = {"grouped": [Fold("a", np.array([0, 1, 2]), np.array([3, 4])), Fold("b", np.array([3, 4]), np.array([0, 1, 2]))]}
    segment_scene = np.array([0, 0, 2, 3, 3, 3])  # scenes 1 and 4 gave no segment
    out, empty = without_empty_scenes(folds, segment_scene, 5)
    assert empty.tolist() == [1, 4]
    assert [(f.train.tolist(), f.test.tolist()) for f in out["grouped"]] == [([0, 2], [3]), ([3], [0, 2])]
    same, none = without_empty_scenes(folds, np.arange(5), 5)
    assert none.size == 0 and all(np.array_equal(a.test, b.test) for a, b in zip(same["grouped"], folds["grouped"]))
