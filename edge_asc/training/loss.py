"""Semi-hard triplet mining and the paper's audio loss (section 3.3), vectorised over the batch.

Eq. 6:  Lsim(a, p, n) = max(||F(a) - F(p)||^2 - ||F(a) - F(n)||^2, 0)
Eq. 7:  L = sum over triplets of  h''_a h''_p h''_n Lsim(a, p, n) - alpha (h''_a + h''_p + h''_n)

Fixes to the paper:
* Eq. 6 has no margin. With semi-hard negatives (never closer to the anchor than the positive,
  d(a, n) > d(a, p)) the difference d(a, p) - d(a, n) is always negative, so Lsim is identically zero
  and nothing is learnt. We add the usual margin m: Lsim = max(d(a, p) - d(a, n) + m, 0). Among the
  negatives mining returns (never closer than the positive), it is positive exactly for the semi-hard
  ones, d(a, p) < d(a, n) < d(a, p) + m.
* Eq. 7 is unbounded below when h'' is: the encoder bounds h'' with a sigmoid (training/model.py).
* We average over the triplets of a batch instead of summing, so the learning rate does not depend
  on how many triplets a batch yields.

Distances are squared Euclidean distances between similarity embeddings h' (the importance scalar is
trained by eq. 7's product term, not by the distance).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

ALPHA = 0.1  # the paper's importance regulariser


class Triplets(NamedTuple):
    anchor: torch.Tensor  # (T,) batch indices
    positive: torch.Tensor  # (T,)
    negative: torch.Tensor  # (T,)
    semi_hard: torch.Tensor  # (T,) bool: d(a,p) < d(a,n) < d(a,p) + margin (else the closest farther negative)


def squared_distances(emb: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) squared Euclidean distances, clamped at 0."""
    sq = (emb * emb).sum(dim=1)  # (B,)
    d = sq[:, None] + sq[None, :] - 2.0 * emb @ emb.T  # (B, B)
    return d.clamp_min(0.0)


@torch.no_grad()
def mine_triplets(
    emb: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    generator: torch.Generator | None = None,
) -> Triplets:
    """One triplet per usable anchor, all anchors at once.

    Every item of the (randomly drawn) batch that has a same-label partner is an anchor; its positive is
    a random other item of its label; its negative a random *semi-hard* item of another label
    (d(a,p) < d(a,n) < d(a,p) + margin), or when there is none the closest negative that is still farther
    than the positive. Anchors whose every negative is closer than the positive are dropped: a negative
    is never closer to the anchor than the positive (the paper's rule).
    """
    b = emb.shape[0]
    d = squared_distances(emb.detach().float())  # (B, B)
    same = labels[:, None] == labels[None, :]  # (B, B)
    not_self = ~torch.eye(b, dtype=torch.bool, device=emb.device)  # (B, B)
    pos_mask = same & not_self  # (B, B)
    # a random positive: the largest of uniform scores among the allowed columns
    u = torch.rand((b, b), generator=generator, device=emb.device)  # (B, B)
    pos = torch.where(pos_mask, u, -1.0).argmax(dim=1)  # (B,)
    d_ap = d.gather(1, pos[:, None])  # (B, 1)
    farther = ~same & (d > d_ap)  # (B, B) allowed negatives
    semi = farther & (d < d_ap + margin)  # (B, B) preferred negatives
    # ranking key (smallest wins): semi-hard in [0, 1) at random, else farther negatives in [1, 2) by distance
    v = torch.rand((b, b), generator=generator, device=emb.device)  # (B, B)
    scale = d.max().clamp_min(1e-12)
    key = torch.where(semi, v, torch.where(farther, 1.0 + d / (2.0 * scale), torch.inf))  # (B, B)
    best, neg = key.min(dim=1)  # (B,), (B,)
    ok = pos_mask.any(dim=1) & torch.isfinite(best)  # (B,)
    anchor = torch.nonzero(ok).squeeze(1)  # (T,)
    return Triplets(anchor, pos[anchor], neg[anchor], best[anchor] < 1.0)


def triplet_losses(emb: torch.Tensor, t: Triplets, margin: float) -> torch.Tensor:
    """(T,) Lsim per triplet: max(d(a,p) - d(a,n) + margin, 0) (eq. 6 with a margin)."""
    d_ap = ((emb[t.anchor] - emb[t.positive]) ** 2).sum(dim=1)  # (T,)
    d_an = ((emb[t.anchor] - emb[t.negative]) ** 2).sum(dim=1)  # (T,)
    return torch.relu(d_ap - d_an + margin)  # (T,)


def triplet_loss(emb: torch.Tensor, t: Triplets, margin: float) -> torch.Tensor:
    """Mean of eq. 6 (with margin) over the triplets; 0 (with a graph) when there are none."""
    if t.anchor.numel() == 0:
        return emb.sum() * 0.0
    return triplet_losses(emb, t, margin).mean()


def audio_loss(
    emb: torch.Tensor, importance: torch.Tensor, t: Triplets, margin: float, alpha: float = ALPHA
) -> torch.Tensor:
    """Eq. 7 averaged over triplets: mean(h''a h''p h''n Lsim - alpha (h''a + h''p + h''n)).

    emb: (B, D) similarity embeddings h'; importance: (B,) h'' in (0, 1).
    """
    if t.anchor.numel() == 0:
        return emb.sum() * 0.0 + importance.sum() * 0.0
    ia, ip, i_n = importance[t.anchor], importance[t.positive], importance[t.negative]  # (T,) each
    lsim = triplet_losses(emb, t, margin)  # (T,)
    return (ia * ip * i_n * lsim - alpha * (ia + ip + i_n)).mean()
