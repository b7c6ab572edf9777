"""The torch encoder (training/model.py): shapes and variants, the input normalisation, the bounded importance."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_asc.training.config import ModelConfig  # noqa: E402
from edge_asc.training.loss import audio_loss, mine_triplets  # noqa: E402
from edge_asc.training.model import EncoderNet  # noqa: E402

torch.set_num_threads(1)


def Encoder(config: ModelConfig, n_classes: int = 0) -> EncoderNet:
    """The network on the default features (52 per window, 20 windows)."""
    return EncoderNet(config, n_features=52, n_frames=20, n_classes=n_classes)


def _x(b: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((b, 20, 52)).astype(np.float32))


@pytest.mark.parametrize(
    "variant, size, has_importance",
    [("audio", 2 * 16 + 1, True), ("triplet", 2 * 16, False), ("noattn", 2 * 16, False), ("softmax", 2 * 16, False)],
)
def test_each_variant_gives_embeddings_of_its_size_and_only_the_audio_variant_an_importance(variant, size, has_importance):
    torch.manual_seed(0)
    model = Encoder(ModelConfig(variant=variant, hidden_size=16), n_classes=3 if variant == "softmax" else 0).eval()
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


def test_the_softmax_variant_needs_classes():
    with pytest.raises(ValueError, match="n_classes"):
        Encoder(ModelConfig(variant="softmax"), n_classes=0)


def test_the_input_normalisation_is_applied_before_the_network():
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


def test_the_audio_loss_sends_gradients_into_the_importance_head_the_attention_and_the_lstm():
    torch.manual_seed(0)
    model = Encoder(ModelConfig(hidden_size=8, dropout=0.0))
    out = model.encode(_x(16, seed=3))
    labels = torch.arange(16) % 4
    t = mine_triplets(out.similarity, labels, 1.0, torch.Generator().manual_seed(0))
    assert t.anchor.numel() > 0
    audio_loss(out.similarity, out.importance, t, margin=1.0, alpha=0.1).backward()
    for p in (model.importance.weight, model.importance.bias, model.attention.weight, model.lstm.weight_ih_l0):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0
