"""Semi-hard triplet mining and the triplet and audio losses (training/loss.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_asc.training.loss import Triplets, audio_loss, mine_triplets, squared_distances, triplet_loss, triplet_losses  # noqa: E402

torch.set_num_threads(1)


def _constructed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a line: class 0 at 0, 1, 2; class 1 at 1.5, 2.5, 10; class 2 at 0.2, 30."""
    pos = torch.tensor([0.0, 1.0, 2.0, 1.5, 2.5, 10.0, 0.2, 30.0])
    emb = torch.stack([pos, torch.zeros_like(pos)], dim=1)  # (8, 2)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    return emb, labels


@pytest.mark.parametrize("margin", [0.0, 0.5, 3.0, 50.0])
@pytest.mark.parametrize("seed", range(5))
def test_mining_prefers_a_semi_hard_negative_else_the_closest_farther_one(margin, seed):
    emb, labels = _constructed_batch()
    d = squared_distances(emb)
    t = mine_triplets(emb, labels, margin, torch.Generator().manual_seed(seed))
    assert t.anchor.numel() > 0
    a, p, n = t.anchor, t.positive, t.negative
    assert torch.all(labels[a] == labels[p]) and torch.all(a != p)
    assert torch.all(labels[a] != labels[n])
    d_ap, d_an = d[a, p], d[a, n]
    assert torch.all(d_an > d_ap)  # never closer to the anchor than the positive
    assert torch.all(d_an[t.semi_hard] < d_ap[t.semi_hard] + margin)
    for i in range(a.numel()):
        others = (labels != labels[a[i]]) & (d[a[i]] > d_ap[i])
        semi = others & (d[a[i]] < d_ap[i] + margin)
        if semi.any():
            assert bool(t.semi_hard[i])  # a semi-hard negative is preferred whenever one exists
        else:
            assert not bool(t.semi_hard[i])
            assert d_an[i] == d[a[i]][others].min()  # else the closest negative beyond the positive


def test_mining_drops_anchors_without_a_farther_negative_and_without_positive():
    # anchor 0's positive (1) is far and both negatives (2, 3) are closer -> anchor 0 is dropped;
    # anchor 1 keeps negative 3, which lies beyond its positive
    emb = torch.tensor([[0.0, 0.0], [10.0, 0.0], [1.0, 0.0], [-5.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 2])
    t = mine_triplets(emb, labels, 1.0, torch.Generator().manual_seed(0))
    assert 0 not in t.anchor.tolist()
    assert 2 not in t.anchor.tolist() and 3 not in t.anchor.tolist()  # no positive for them
    assert t.anchor.tolist() == [1] and t.negative.tolist() == [3]


def test_mining_draws_positives_and_anchors_at_random():
    emb, labels = _constructed_batch()
    seen = {tuple(mine_triplets(emb, labels, 50.0, torch.Generator().manual_seed(s)).positive.tolist()) for s in range(20)}
    assert len(seen) > 1


def test_margin_makes_semi_hard_triplets_count():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.2]])  # d(a,p) = 1, d(a,n) = 1.44
    t = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([True]))
    assert float(triplet_loss(emb, t, margin=0.0)) == 0.0  # eq. 6 as printed: zero for any semi-hard triplet
    assert float(triplet_loss(emb, t, margin=1.0)) == pytest.approx(1.0 - 1.44 + 1.0)
    assert float(triplet_losses(emb, t, margin=0.2)[0]) == 0.0  # not semi-hard for this margin


def test_the_audio_loss_is_zero_when_importance_and_alpha_are_zero():
    torch.manual_seed(0)
    emb = torch.randn(16, 8)
    labels = torch.arange(16) % 4
    t = mine_triplets(emb, labels, 5.0, torch.Generator().manual_seed(0))
    assert float(triplet_loss(emb, t, 5.0)) > 0
    loss = audio_loss(emb, torch.zeros(16), t, margin=5.0, alpha=0.0)
    assert float(loss) == 0.0
    # with alpha the regulariser alone remains: -alpha * 3 * mean importance
    imp = torch.full((16,), 0.5)
    loss = audio_loss(emb, imp, t, margin=0.0, alpha=0.1)
    assert float(loss) == pytest.approx(-0.1 * 1.5 + float(triplet_loss(emb, t, 0.0)) * 0.125)


def test_no_triplets_give_a_zero_loss_that_still_has_a_graph():
    emb = torch.randn(4, 3, requires_grad=True)
    imp = torch.rand(4, requires_grad=True)
    empty = Triplets(*(torch.zeros(0, dtype=torch.long) for _ in range(3)), torch.zeros(0, dtype=torch.bool))
    loss = audio_loss(emb, imp, empty, 0.2) + triplet_loss(emb, empty, 0.2)
    loss.backward()
    assert float(loss.detach()) == 0.0 and emb.grad is not None
