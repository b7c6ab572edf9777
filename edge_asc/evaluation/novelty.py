"""Is the distance to the nearest training item a usable "unknown" signal in the default mode?

Issue 10 asks whether a threshold on the distance from a segment to its nearest index item separates audio
of scene classes the model does not know from unheard recordings of classes it knows. Measured as an
AUROC, leave-one-class-out at the index level: for each class c with test segments, the index without c's
items is queried; the test segments of c are the *novel* audio, the test segments of every other class
(recordings the index never held) the *known* audio. The AUROC is the chance that a random novel segment
is farther from its nearest item than a random known one (0.5: no signal, 1.0: a threshold separates them
perfectly). It is optimistic when the encoder was trained on other recordings of c (an encoder that never
heard a class would place it less far from everything), so a low value is conclusive.

``USEFUL_AUROC``: the default mode gets a distance threshold only if the measured AUROC reaches it (the
issue's probe found 0.59-0.64; bench/bench_novelty.py measures it on encoders that never heard the test
recordings). Below it, any threshold that catches most novel audio also calls much known audio unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

USEFUL_AUROC = 0.9


def auroc(novel: np.ndarray, known: np.ndarray) -> float:
    """P(novel score > known score) + 0.5 P(equal), by ranks (Mann-Whitney U)."""
    novel, known = np.asarray(novel, np.float64).ravel(), np.asarray(known, np.float64).ravel()
    if not novel.size or not known.size:
        raise ValueError("need at least one novel and one known score")
    x = np.concatenate([novel, known])
    order = x.argsort(kind="stable")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(1, x.size + 1)
    for v in np.unique(x[np.diff(np.sort(x), prepend=np.nan) == 0]):  # ties share their mean rank
        ranks[x == v] = ranks[x == v].mean()
    return float((ranks[: novel.size].sum() - novel.size * (novel.size + 1) / 2) / (novel.size * known.size))


def class_nearest_sq_distances(x: np.ndarray, items: np.ndarray, item_labels: np.ndarray, classes: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(B, len(classes)) squared L2 distance of each row of x to its nearest item of each class (exact;
    ``chunk`` rows at a time; inf for a class without items)."""
    x, items = np.asarray(x, np.float32), np.asarray(items, np.float32)
    sq = (items * items).sum(1)
    out = np.full((len(x), len(classes)), np.inf)
    for a in range(0, len(x), chunk):
        q = x[a : a + chunk]
        d = np.maximum((q * q).sum(1)[:, None] - 2 * q @ items.T + sq[None, :], 0.0)
        for j, c in enumerate(classes):
            if (item_labels == c).any():
                out[a : a + chunk, j] = d[:, item_labels == c].min(1)
    return out


@dataclass(frozen=True)
class NoveltyResult:
    auroc: float  # mean over the held-out classes
    per_class: dict[int, float]  # class id -> AUROC with that class held out of the index

    @property
    def useful(self) -> bool:
        return self.auroc >= USEFUL_AUROC


def leave_one_class_out(index_emb: np.ndarray, index_labels: np.ndarray, test_emb: np.ndarray, test_labels: np.ndarray, chunk: int = 1024) -> NoveltyResult:
    """The leave-one-class-out AUROC of the nearest-item distance (see the module docstring).

    index_emb (N, D), index_labels (N,): the training items; test_emb (B, D), test_labels (B,): segments of
    recordings the index does not hold. Classes without test segments, or whose removal leaves no known
    test segment, are skipped.
    """
    classes = np.unique(index_labels)
    by_class = class_nearest_sq_distances(test_emb, index_emb, index_labels, classes, chunk)  # (B, classes)
    per = {}
    for c in np.unique(test_labels):
        others = classes != c
        novel, known = test_labels == c, test_labels != c
        if not others.any() or not known.any():
            continue
        d = by_class[:, others].min(1)  # nearest item once c's items are out of the index
        per[int(c)] = auroc(d[novel], d[known])
    if not per:
        raise ValueError("no class had both novel and known test segments")
    return NoveltyResult(float(np.mean(list(per.values()))), per)
