"""The segment encoder of the paper (section 3.2): BiLSTM over the 20 windows, attention, importance.

For a segment X of T = 20 windows of F = 52 raw features:

    x_t   = clip((X_t - mean) / std)                 normalisation from the training set (buffers), clipped
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

from edge_asc.training.config import VARIANTS, ModelConfig

__all__ = ["VARIANTS", "ModelConfig", "Encoder", "EncoderOutput"]

NORM_EPS = 1e-6  # smallest std used in the input normalisation


class EncoderOutput(NamedTuple):
    similarity: torch.Tensor  # (B, 2H) h' (or the mean hidden state for noattn)
    importance: torch.Tensor | None  # (B,) h'' in (0, 1), audio variant only
    embedding: torch.Tensor  # (B, D) what the index stores


class Encoder(nn.Module):
    """Raw features (B, 20, 52) -> embedding (B, D); ``encode`` also gives h' and h'' for the loss."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.variant == "softmax" and config.n_classes < 2:
            raise ValueError(f"the softmax variant needs n_classes >= 2, got {config.n_classes}")
        self.config = config
        h2 = config.similarity_size
        self.register_buffer("feature_mean", torch.zeros(config.n_features))
        self.register_buffer("feature_std", torch.ones(config.n_features))
        columns = config.input_columns
        self.columns = None if len(columns) == config.n_features else torch.tensor(columns)
        self.lstm = nn.LSTM(len(columns), config.hidden_size, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)
        self.attention = nn.Linear(h2, 1) if config.variant != "noattn" else None  # V, b
        self.importance = nn.Linear(h2, 1) if config.has_importance else None  # V', b'
        # a classifier head (training only, never exported): the softmax variant's, or an auxiliary one
        self.classifier = nn.Linear(h2, config.n_classes) if config.n_classes > 0 else None

    def set_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Per-feature statistics of the training set (52 values each)."""
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32).reshape(-1))
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32).reshape(-1)).clamp_min(NORM_EPS)
        if mean_t.shape != self.feature_mean.shape or std_t.shape != self.feature_std.shape:
            raise ValueError(f"normalisation needs {self.config.n_features} values, got {tuple(mean_t.shape)}")
        self.feature_mean.copy_(mean_t)
        self.feature_std.copy_(std_t)

    def encode(self, x: torch.Tensor) -> EncoderOutput:
        x = (x - self.feature_mean) / self.feature_std  # (B, T, F)
        if self.config.input_clip > 0:
            x = x.clamp(-self.config.input_clip, self.config.input_clip)  # (B, T, F)
        if self.columns is not None:
            x = x.index_select(2, self.columns)  # (B, T, F') the features the LSTM reads
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
        """(B, 2H) -> (B, n_classes): the classifier head (softmax variant, or the auxiliary loss)."""
        if self.classifier is None:
            raise ValueError(f"this {self.config.variant} encoder has no classifier head")
        return self.classifier(similarity)
