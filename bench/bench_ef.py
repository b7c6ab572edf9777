"""Search breadth ``ef`` chosen on queries from recordings that are not in the index (cross-validated by recording).

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 python bench/bench_ef.py [--folds 5] [--efs 16,32,64,...]

The shipped encoder (models/*.onnx) and its index (index/<model>/: every segment of ambient13 embedded by
that encoder). Recordings are dealt into ``--folds`` folds (within each label, round-robin in id order, so
every fold holds most places). For each fold an index is built, with the shipped index's M,
ef_construction and seed, from the items of the other folds' recordings only; the fold's own segments are
the queries: audio of recordings the index does not hold, as the daemon hears (the encoder did see them in
training; bench_enroll's per-fold encoders are the harder case). For each ef:

- recall@1: the share of queries whose first result is the exact nearest item (brute force, float64;
  a tie at the same distance counts as found), and label@1: the share whose first result has the exact
  nearest item's label (what a segment's vote reads);
- the median time of one query (k = 1, one thread, SegmentIndex.query).

``enrolled``: the same with places enrolled: per fold, the first half of each of the fold's first three
recordings is enrolled (as places of their own), searched beside the fold's index (runtime.search.Searcher,
the daemon's default mode); the queries are the fold's other segments. Enrolled items are searched
exactly, so only the base index's approximation can miss.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from edge_asc.runtime.encoder import Encoder
from edge_asc.runtime.enrolled import EnrolledSet, Enrolment
from edge_asc.runtime.index import SegmentIndex
from edge_asc.runtime.search import Searcher

REPO = Path(__file__).resolve().parents[1]
EFS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def folds_by_recording(index: SegmentIndex, n_folds: int) -> np.ndarray:
    """(N,) fold of every item: recordings dealt round-robin within each label."""
    rec = index.recording_ids
    fold_of: dict[str, int] = {}
    for label in range(len(index.labels)):
        for i, r in enumerate(sorted(set(rec[index.item_labels == label]))):
            fold_of[r] = i % n_folds
    return np.array([fold_of[r] for r in rec])


def exact_nearest(base: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Q,) id and squared distance of each query's nearest base row, in float64."""
    b, q = base.astype(np.float64), queries.astype(np.float64)
    ids, dists = [], []
    for s in range(0, len(q), 512):
        d = (q[s : s + 512] ** 2).sum(1)[:, None] - 2 * q[s : s + 512] @ b.T + (b**2).sum(1)[None, :]
        i = d.argmin(1)
        ids.append(i)
        dists.append(d[np.arange(len(i)), i])
    return np.concatenate(ids), np.concatenate(dists)


def score(found_ids, found_labels, exact_ids, exact_labels, found_d, exact_d) -> tuple[float, float]:
    hit = (found_ids == exact_ids) | (np.abs(found_d - exact_d) <= 1e-5 * np.maximum(exact_d, 1e-6))
    return float(hit.mean()), float((found_labels == exact_labels).mean())


def median_query_ms(index, queries: np.ndarray, n: int = 400) -> float:
    times = []
    for q in queries[:n]:
        t = time.perf_counter()
        index.query(q[None], 1)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def fold_index(shipped: SegmentIndex, meta, keep: np.ndarray) -> SegmentIndex:
    m = shipped.manifest
    return SegmentIndex.build(shipped.vectors(np.flatnonzero(keep)), shipped.item_labels[keep], shipped.scene_ids[keep],
                              shipped.recording_ids[keep], meta, M=m.M, ef_construction=m.ef_construction, ef=m.ef,
                              positions=shipped.positions[keep])


def enrolled_overlay(shipped: SegmentIndex, meta, test: np.ndarray) -> tuple[EnrolledSet, np.ndarray]:
    """Places from the first half of the fold's first three recordings; the items left as queries."""
    overlay = EnrolledSet.empty(meta)
    queries = test.copy()
    rec = shipped.recording_ids
    for r in sorted(set(rec[test]))[:3]:
        ids = np.flatnonzero(test & (rec == r))
        half = ids[: len(ids) // 2]
        queries[half] = False
        label = f"place-{r}"
        overlay = overlay.with_items(Enrolment(f"{label}@bench", label, r, "2026-01-01T00:00:00Z", 0.3 * len(half), len(half)),
                                     shipped.vectors(half), np.arange(len(half)) * 0.3)
        overlay = overlay.with_threshold(label, 1e9, {})
    return overlay, queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--efs", default=",".join(map(str, EFS)))
    args = ap.parse_args()
    efs = [int(e) for e in args.efs.split(",")]
    model = sorted((REPO / "models").glob("*.onnx"))[0]
    meta = Encoder(model).meta
    shipped = SegmentIndex.load(REPO / "index" / model.stem, meta)
    vectors = shipped.vectors()
    fold = folds_by_recording(shipped, args.folds)
    rows = {(kind, ef): [] for kind in ("index", "enrolled") for ef in efs}  # per fold: (recall, label@1, ms, queries)
    for f in range(args.folds):
        train, test = fold != f, fold == f
        base = fold_index(shipped, meta, train)
        overlay, enrolled_queries = enrolled_overlay(shipped, meta, test)
        searcher = Searcher(base, overlay)
        for kind, index, qmask in (("index", base, test), ("enrolled", searcher, enrolled_queries)):
            q = vectors[qmask]
            pool = vectors[train] if kind == "index" else np.concatenate([vectors[train], overlay.embeddings])
            pool_labels = base.item_labels if kind == "index" else np.r_[base.item_labels, searcher._label_map[overlay.item_labels]]
            ex_ids, ex_d = exact_nearest(pool, q)
            for ef in efs:
                index.set_ef(ef)
                labels, dist, ids = index.query(q, 1)
                rec, lab = score(ids[:, 0], labels[:, 0], ex_ids, pool_labels[ex_ids], dist[:, 0].astype(np.float64), ex_d)
                rows[kind, ef].append((rec, lab, median_query_ms(index, q), len(q)))
        print(f"fold {f}: index of {int(train.sum())} items from {len(set(shipped.recording_ids[train]))} recordings, "
              f"{int(test.sum())} queries from {len(set(shipped.recording_ids[test]))}; {len(overlay)} enrolled items", flush=True)
    print(f"\n{'search':<9} {'ef':>4} {'recall@1':>9} {'worst fold':>10} {'label@1':>8} {'median ms':>9}   (pooled over {args.folds} folds)")
    for (kind, ef), r in rows.items():
        n = np.array([x[3] for x in r])
        rec = float(np.dot([x[0] for x in r], n) / n.sum())
        lab = float(np.dot([x[1] for x in r], n) / n.sum())
        print(f"{kind:<9} {ef:>4} {rec:>9.4f} {min(x[0] for x in r):>10.4f} {lab:>8.4f} {statistics.median(x[2] for x in r):>9.4f}")


if __name__ == "__main__":
    main()
