import numpy as np
import pytest

from edge_asc.evaluation.novelty import USEFUL_AUROC, auroc, leave_one_class_out


def test_auroc_is_one_when_every_novel_score_is_larger_and_a_half_when_all_are_equal():
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert auroc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert auroc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5
    assert auroc([2.0], [1.0, 2.0, 3.0]) == pytest.approx(0.5)  # one below, one tied (half), one above


def test_auroc_matches_the_pairwise_definition_on_random_scores():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pairs = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    assert auroc(a, b) == pytest.approx(pairs)


def test_auroc_refuses_an_empty_side():
    with pytest.raises(ValueError, match="at least one novel and one known"):
        auroc([], [1.0])


def test_a_class_far_from_the_others_is_found_novel_and_overlapping_classes_are_not():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [0.5, 0.0], [20.0, 20.0]])  # classes 0 and 1 overlap; class 2 lies far away
    def draw(n):
        y = np.repeat(np.arange(3), n)
        return centres[y] + rng.normal(0, 0.5, (3 * n, 2)), y
    index, y_index = draw(50)
    test, y_test = draw(30)
    r = leave_one_class_out(index, y_index, test, y_test)
    assert r.per_class[2] > 0.99  # held out, its segments are far from everything left
    assert r.per_class[0] < 0.8 and r.per_class[1] < 0.8  # held out, the other overlapping class stays near
    assert r.auroc == pytest.approx(np.mean(list(r.per_class.values())))
    assert r.useful == (r.auroc >= USEFUL_AUROC)
