"""Encoder shapes and variants, semi-hard mining, the triplet and audio losses, the augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_asc.training.augment import Augmenter, mix_at_snr, random_eq, random_gain, random_shift
from edge_asc.training.loss import Triplets, audio_loss, mine_triplets, squared_distances, triplet_loss, triplet_losses
from edge_asc.training.model import Encoder
from edge_asc.training.config import AugmentConfig, ModelConfig

torch.set_num_threads(1)


def _x(b: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((b, 20, 52)).astype(np.float32))


@pytest.mark.parametrize(
    "variant, size, has_importance",
    [("audio", 2 * 16 + 1, True), ("triplet", 2 * 16, False), ("noattn", 2 * 16, False), ("softmax", 2 * 16, False)],
)
def test_encoder_variants_shapes(variant, size, has_importance):
    torch.manual_seed(0)
    model = Encoder(ModelConfig(variant=variant, hidden_size=16, n_classes=3 if variant == "softmax" else 0)).eval()
    out = model.encode(_x())
    assert model(_x()).shape == (8, size) == out.embedding.shape
    assert model.config.embedding_size == size
    assert out.similarity.shape == (8, 32)
    assert (out.importance is not None) == has_importance
    assert (model.attention is None) == (variant == "noattn")
    if has_importance:
        assert torch.all((out.importance > 0) & (out.importance < 1))
        assert torch.equal(out.embedding[:, -1], out.importance)
    if variant == "softmax":
        assert model.logits(out.similarity).shape == (8, 3)
    else:
        with pytest.raises(ValueError, match="no classifier head"):
            model.logits(out.similarity)
        # an auxiliary head (training only) does not change the exported embedding's size
        assert Encoder(ModelConfig(variant=variant, hidden_size=16, n_classes=3))(_x()).shape == (8, size)


def test_softmax_variant_needs_classes():
    with pytest.raises(ValueError, match="n_classes"):
        Encoder(ModelConfig(variant="softmax", n_classes=0))


def test_normalisation_is_applied_first():
    torch.manual_seed(0)
    model = Encoder(ModelConfig(hidden_size=8)).eval()
    rng = np.random.default_rng(1)
    mean = rng.standard_normal(52).astype(np.float32) * 10
    std = rng.uniform(0.5, 20, 52).astype(np.float32)
    x = _x(4)
    plain = model(x)
    model.set_normalization(mean, std)
    raw = x * torch.from_numpy(std) + torch.from_numpy(mean)
    torch.testing.assert_close(model(raw), plain, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="52"):
        model.set_normalization(mean[:10], std[:10])


def test_importance_is_bounded_so_audio_loss_is_bounded_below():
    torch.manual_seed(0)
    model = Encoder(ModelConfig(hidden_size=8))
    with torch.no_grad():
        model.importance.bias.fill_(1e4)  # the unbounded h'' of eq. 4 would be ~1e4 here
    with torch.no_grad():
        out = model.encode(_x(16))
    assert torch.all(out.importance <= 1.0)
    labels = torch.arange(16) % 4
    t = mine_triplets(out.similarity, labels, margin=0.5, generator=torch.Generator().manual_seed(0))
    alpha = 0.1
    assert float(audio_loss(out.similarity, out.importance, t, margin=0.5, alpha=alpha)) >= -3 * alpha - 1e-6


def _constructed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Points on a line: class 0 at 0, 1, 2; class 1 at 1.5, 2.5, 10; class 2 at 0.2, 30."""
    pos = torch.tensor([0.0, 1.0, 2.0, 1.5, 2.5, 10.0, 0.2, 30.0])
    emb = torch.stack([pos, torch.zeros_like(pos)], dim=1)  # (8, 2)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    return emb, labels


@pytest.mark.parametrize("margin", [0.0, 0.5, 3.0, 50.0])
@pytest.mark.parametrize("seed", range(5))
def test_mining_picks_semi_hard_negatives(margin, seed):
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


def test_audio_loss_zero_when_importance_and_alpha_are_zero():
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


def test_gradient_flows_into_importance_head_and_lstm():
    torch.manual_seed(0)
    model = Encoder(ModelConfig(hidden_size=8, dropout=0.0))
    out = model.encode(_x(16, seed=3))
    labels = torch.arange(16) % 4
    t = mine_triplets(out.similarity, labels, 1.0, torch.Generator().manual_seed(0))
    assert t.anchor.numel() > 0
    audio_loss(out.similarity, out.importance, t, margin=1.0, alpha=0.1).backward()
    for p in (model.importance.weight, model.importance.bias, model.attention.weight, model.lstm.weight_ih_l0):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_empty_triplets_give_zero_loss_with_a_graph():
    emb = torch.randn(4, 3, requires_grad=True)
    imp = torch.rand(4, requires_grad=True)
    empty = Triplets(*(torch.zeros(0, dtype=torch.long) for _ in range(3)), torch.zeros(0, dtype=torch.bool))
    loss = audio_loss(emb, imp, empty, 0.2) + triplet_loss(emb, empty, 0.2)
    loss.backward()
    assert float(loss.detach()) == 0.0 and emb.grad is not None


# --- augmentation ---------------------------------------------------------------------------------


def test_augmentations_change_level_colour_and_grid_reproducibly():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32)
    cfg = AugmentConfig(gain_db=6.0)
    g = random_gain(x, np.random.default_rng(1), 6.0)
    ratio_db = 20 * np.log10(np.std(g) / np.std(x))
    assert -6.0 <= ratio_db <= 6.0 and abs(ratio_db) > 1e-3
    eq = random_eq(x, np.random.default_rng(2), cfg, 16000)
    assert eq.shape == x.shape and eq.dtype == np.float32 and not np.allclose(eq, x)
    flat = random_eq(x, np.random.default_rng(2), AugmentConfig(eq_tilt_db=0.0, eq_band_db=0.0), 16000)
    np.testing.assert_allclose(flat, x, atol=1e-5)  # a flat curve is the identity
    s = random_shift(x, np.random.default_rng(3), 4800)
    assert 16000 - 4800 < s.shape[0] <= 16000 and np.array_equal(s, x[16000 - s.shape[0] :])


def test_mixing_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype(np.float32)
    other = 3.0 * rng.standard_normal(3000).astype(np.float32)  # shorter: looped
    y = mix_at_snr(x, other, np.random.default_rng(1), (10.0, 10.0))
    noise = y - x
    snr = 10 * np.log10(np.mean(x * x) / np.mean(noise * noise))
    assert y.shape == x.shape and snr == pytest.approx(10.0, abs=0.01)


def test_augmenter_mixes_other_recordings_of_the_same_class_and_is_seeded():
    aug = Augmenter(AugmentConfig(mix_prob=1.0), 16000, 4800)
    labels = np.array([0, 0, 0, 1, 1, 2])
    recordings = np.array([0, 0, 1, 2, 2, 3])
    partner = aug.partners(labels, recordings, np.random.default_rng(0))
    assert partner[0] == 2 and partner[1] == 2 and partner[2] in (0, 1)  # another recording when there is one
    assert partner[3] == 4 and partner[4] == 3  # else another scene of the class
    assert partner[5] == -1  # nothing to mix with
    audio = [np.random.default_rng(i).standard_normal(9600).astype(np.float32) for i in range(6)]
    a = aug.epoch(audio, labels, recordings, np.random.default_rng(7))
    b = aug.epoch(audio, labels, recordings, np.random.default_rng(7))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v[: u.shape[0]]) for u, v in zip(a, audio))
    assert aug.epoch(audio, labels, recordings, np.random.default_rng(7)) is not audio
    off = Augmenter(AugmentConfig.off(), 16000, 4800).epoch(audio, labels, recordings, np.random.default_rng(0))
    assert all(u is v for u, v in zip(off, audio))


def test_mining_takes_positives_from_other_recordings_when_asked():
    emb, labels = _constructed_batch()
    groups = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4])  # class 0: recordings 0, 0, 1; class 1: one recording
    for seed in range(10):
        t = mine_triplets(emb, labels, 50.0, torch.Generator().manual_seed(seed), groups=groups)
        a, p = t.anchor, t.positive
        for i in range(a.numel()):
            if int(labels[a[i]]) == 0:
                assert groups[p[i]] != groups[a[i]]  # another recording exists: always taken
            elif int(labels[a[i]]) == 1:
                assert groups[p[i]] == groups[a[i]] and p[i] != a[i]  # none exists: same recording
        assert torch.all(labels[a] == labels[p])


def test_input_clip_bounds_the_normalised_features():
    torch.manual_seed(0)
    model = Encoder(ModelConfig(hidden_size=8, input_clip=3.0)).eval()
    x = _x(2)
    wild, bound = x.clone(), x.clone()
    wild[:, :4, 20] = 100.0  # a stream start's delta outliers
    bound[:, :4, 20] = 3.0
    torch.testing.assert_close(model(wild), model(bound), rtol=0, atol=0)
    assert not torch.allclose(model(x), model(bound))


def test_robust_normalisation_ignores_stream_start_outliers():
    from edge_asc.training.train import normalization

    rng = np.random.default_rng(0)
    feats = rng.normal(5.0, 2.0, (500, 20, 52)).astype(np.float32)
    feats[::50, :4, 20] = 300.0  # 2% of segments, 4 of 20 windows: 0.4% of the values
    mean, std = normalization(feats)
    rmean, rstd = normalization(feats, robust=True)
    assert std[20] > 5 * 2.0  # the plain std is blown up by the outliers
    assert abs(rstd[20] - 2.0) < 0.15 and abs(rmean[20] - 5.0) < 0.15
    np.testing.assert_allclose(rstd[:20], 2.0, rtol=0.1)


def test_split_cuts_scenes_into_streams():
    aug = Augmenter(AugmentConfig(pieces=3), 16000, 4800)
    audio = [np.arange(n, dtype=np.float32) for n in (10000, 30000)]
    pieces, owner = aug.split(audio, np.random.default_rng(0))
    assert owner.tolist() == [0, 0, 0, 1, 1, 1]
    for i, x in enumerate(audio):
        np.testing.assert_array_equal(np.concatenate([p for p, o in zip(pieces, owner) if o == i]), x)
    same, owner1 = Augmenter(AugmentConfig(pieces=1), 16000, 4800).split(audio, np.random.default_rng(0))
    assert owner1.tolist() == [0, 1] and all(p is x for p, x in zip(same, audio))
