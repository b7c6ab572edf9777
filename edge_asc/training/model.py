"""The segment encoder of the paper (section 3.2): BiLSTM over the 20 windows, attention, importance.

For a segment X of T = 20 windows of F = 52 raw features:

    x_t   = (X_t - mean) / std                       normalisation from the training set (buffers)
    s_t   = BiLSTM(x)_t                              (T, 2H)
    a_t   = softmax_t(tanh(s_t V + b))                eq. 2
    h'    = sum_t a_t s_t                             eq. 3, the similarity embedding (2H)
    h''   = sigmoid(h' V' + b')                       eq. 4, the importance embedding (a scalar)
    h     = [h'; h'']                                 eq. 5, the embedding stored in the index

Fix to the paper: eq. 4 leaves h'' unbounded, and eq. 7 rewards large h'' (the term -alpha * sum h''),
so the loss would be unbounded below: the network could drive h'' to +infinity (or flip the sign of the
product term to negative infinity). A sigmoid bounds h'' to (0, 1), where the product of eq. 7 reads as
"all three segments are important".

Our additions (switchable in ModelConfig): dropout on the LSTM outputs during training, and an L2
normalisation of h' so that distances (and hence the triplet margin) have a fixed scale.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_asc.contract import VARIANTS
from edge_asc.training.config import ModelConfig

__all__ = ["VARIANTS", "ModelConfig", "EncoderNet", "EncoderOutput"]

NORM_EPS = 1e-6  # smallest std used in the input normalisation


class EncoderOutput(NamedTuple):
    similarity: torch.Tensor  # (B, 2H) h' (or the mean hidden state for noattn)
    importance: torch.Tensor | None  # (B,) h'' in (0, 1), audio variant only
    embedding: torch.Tensor  # (B, D) what the index stores


class EncoderNet(nn.Module):
    """Raw features (B, T, F) -> embedding (B, D); ``encode`` also gives h' and h'' for the loss.

    The sizes follow from the data, not from the settings: ``n_features`` and ``n_frames`` from the
    feature settings (F = 52, T = 20), ``n_classes`` from the labels (the softmax variant's head; 0 = none).
    (The ONNX session that runs the exported graph is ``edge_asc.runtime.encoder.Encoder``.)
    """

    def __init__(self, config: ModelConfig, n_features: int, n_frames: int, n_classes: int = 0) -> None:
        super().__init__()
        if n_features < 1 or n_frames < 1 or n_classes < 0:
            raise ValueError(f"need n_features, n_frames >= 1 and n_classes >= 0, got {n_features}, {n_frames}, {n_classes}")
        if config.has_classifier and n_classes < 2:
            raise ValueError(f"the softmax variant needs n_classes >= 2, got {n_classes}")
        self.config = config
        self.n_features = n_features
        self.n_frames = n_frames
        self.n_classes = n_classes
        h2 = config.similarity_size
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.lstm = nn.LSTM(n_features, config.hidden_size, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)
        self.attention = nn.Linear(h2, 1) if config.variant != "noattn" else None  # V, b
        self.importance = nn.Linear(h2, 1) if config.has_importance else None  # V', b'
        # the softmax variant's classifier head (training only, never exported)
        self.classifier = nn.Linear(h2, n_classes) if n_classes > 0 else None

    def set_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Per-feature statistics of the training set (52 values each)."""
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32).reshape(-1))
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32).reshape(-1)).clamp_min(NORM_EPS)
        if mean_t.shape != self.feature_mean.shape or std_t.shape != self.feature_std.shape:
            raise ValueError(f"normalisation needs {self.n_features} values, got {tuple(mean_t.shape)}")
        self.feature_mean.copy_(mean_t)
        self.feature_std.copy_(std_t)

    def encode(self, x: torch.Tensor) -> EncoderOutput:
        x = (x - self.feature_mean) / self.feature_std  # (B, T, F)
        s, _ = self.lstm(x)  # (B, T, 2H)
        s = self.dropout(s)  # (B, T, 2H)
        if self.attention is None:
            sim = s.mean(dim=1)  # (B, 2H)
        else:
            a = torch.softmax(torch.tanh(self.attention(s)), dim=1)  # (B, T, 1)
            sim = (a * s).sum(dim=1)  # (B, 2H)
        if self.config.normalize:
            sim = F.normalize(sim, dim=-1)  # (B, 2H)
        if self.importance is None:
            return EncoderOutput(sim, None, sim)
        imp = torch.sigmoid(self.importance(sim)).squeeze(-1)  # (B,)
        return EncoderOutput(sim, imp, torch.cat([sim, imp.unsqueeze(-1)], dim=-1))  # emb (B, 2H+1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) raw features -> (B, D) embedding (the graph exported to ONNX)."""
        return self.encode(x).embedding

    def logits(self, similarity: torch.Tensor) -> torch.Tensor:
        """(B, 2H) -> (B, n_classes): the softmax variant's classifier head."""
        if self.classifier is None:
            raise ValueError(f"this {self.config.variant} encoder has no classifier head")
        return self.classifier(similarity)
