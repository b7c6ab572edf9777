"""Train/test splits of a dataset's scenes: leak-free folds grouped by recording, the official DCASE folds,
and the paper's (leaky) random scene split. A split is a ``datasets.Fold`` of scene indices.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

import numpy as np

from edge_asc.training.datasets import Dataset, Fold
from edge_asc.training.layouts import SETUP_DIR, DatasetError

log = logging.getLogger(__name__)


def split_by_recording(dataset: Dataset, n_folds: int = 3, seed: int = 0) -> list[Fold]:
    """K folds grouped by recording and stratified by label as far as the recordings allow.

    Every recording is on the test side of exactly one fold. Within each class the recordings are
    shuffled (seeded) and dealt to the fold that holds the fewest of that class, ties going to the fold
    with the least test audio; a class with fewer recordings than folds is absent from some test sides.
    """
    recordings = _recordings(dataset)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if n_folds > len(recordings):
        raise ValueError(f"cannot make {n_folds} folds from {len(recordings)} recordings")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[str]] = defaultdict(list)
    for rec, (label, _, _) in recordings.items():
        by_label[label].append(rec)
    fold_of: dict[str, int] = {}
    load = np.zeros(n_folds)  # seconds of test audio per fold
    for label in sorted(by_label):
        recs = sorted(by_label[label])
        recs = [recs[i] for i in rng.permutation(len(recs))]
        count = np.zeros(n_folds)
        if len(recs) < n_folds:
            log.warning(
                "class %s has %d recordings for %d folds: %d folds test none of it%s",
                label,
                len(recs),
                n_folds,
                n_folds - len(recs),
                ", and the fold testing its only recording has none of it to train on" if len(recs) == 1 else "",
            )
        for rec in recs:
            # fewest of this class, then least test audio, then a random fold
            key = np.lexsort((rng.random(n_folds), load, count))
            k = int(key[0])
            fold_of[rec] = k
            count[k] += 1
            load[k] += recordings[rec][1]
    scene_fold = np.array([fold_of[s.recording_id] for s in dataset.scenes])
    folds = []
    for k in range(n_folds):
        test = np.flatnonzero(scene_fold == k).astype(np.int64)
        train = np.flatnonzero(scene_fold != k).astype(np.int64)
        folds.append(Fold(f"recording-fold{k + 1}of{n_folds}", train, test, leaky=False))
    return folds


def _recordings(dataset: Dataset) -> dict[str, tuple[str, float, int]]:
    """{recording id: (majority label, seconds, scenes)}."""
    labels: dict[str, Counter] = defaultdict(Counter)
    seconds: dict[str, float] = defaultdict(float)
    for s in dataset.scenes:
        labels[s.recording_id][s.label] += 1
        seconds[s.recording_id] += s.duration_s
    out = {}
    for rec, counter in labels.items():
        if len(counter) > 1:
            log.warning("recording %s carries several labels (%s); it is stratified as %s", rec, dict(counter), counter.most_common(1)[0][0])
        out[rec] = (counter.most_common(1)[0][0], seconds[rec], sum(counter.values()))
    return out


def official_folds(dataset: Dataset) -> list[Fold]:
    """The folds shipped with a DCASE dataset (evaluation_setup/); an error if it has none."""
    if not dataset.folds:
        raise DatasetError(f"{dataset.root}: no official folds ({dataset.layout} layout without {SETUP_DIR}/fold*_train)")
    return dataset.folds


def random_scene_split(dataset: Dataset, test_fraction: float = 0.2, seed: int = 0) -> Fold:
    """The paper's protocol: a random split of scenes, ignoring recordings. LEAKY: recordings sit on both sides."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n = len(dataset.scenes)
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n_test >= n:
        raise ValueError(f"a test fraction of {test_fraction} of {n} scenes leaves an empty side")
    order = np.random.default_rng(seed).permutation(n)
    fold = Fold(
        f"random-scenes-{round(100 * (1 - test_fraction))}/{round(100 * test_fraction)} (leaky)",
        np.sort(order[n_test:]).astype(np.int64),
        np.sort(order[:n_test]).astype(np.int64),
        leaky=True,
    )
    log.warning("%s: recordings may sit on both sides; accuracies on it are inflated", fold.name)
    return fold


def default_folds(dataset: Dataset, n_folds: int = 3, seed: int = 0) -> list[Fold]:
    """The official folds when the dataset has them, else folds grouped by recording."""
    return official_folds(dataset) if dataset.folds else split_by_recording(dataset, n_folds, seed)
