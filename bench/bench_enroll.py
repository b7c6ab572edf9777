"""Benchmark: remembering places on ambient13 (edge-asc enroll), on recordings the encoder never heard.

    OMP_NUM_THREADS=1 python bench/bench_enroll.py --work /tmp/bench_enroll --json bench/results/bench_enroll.json

Folds grouped by recording (edge_asc.training.splits.split_by_recording, 3 folds). Two settings:

* ``honest``: per fold, an encoder trained on the fold's training recordings only (configs/default-amb13.yaml
  with FOLD_EPOCHS epochs instead of 30), exported to ONNX, and a base index of those recordings
  (``fold_models``; kept in ``--work``, so reruns take seconds). Every figure is on the fold's test
  recordings, which neither the encoder nor the index ever saw.
* ``shipped``: the shipped encoder and index, the fold's test recordings left out of the index only. The
  encoder was trained on all 51 recordings, test ones included: optimistic, printed for comparison.

Every recording is featurised once as a stream from its start, exactly as ``enroll`` and the daemon cut it
(``recording_features``), then embedded by each encoder.

* remember (default mode): each test recording's first E s (5/10/20) are enrolled under its class label;
  the rest of it is classified by its nearest item in base + enrolled. ``accuracy``: share of those segments
  given the right class (``baseline``: without enrolment); ``captured``: share of test segments whose nearest
  item is an enrolled item of *another* recording of *another* class (harm done to other places).
* enrolled-only: each test recording is a place (its first 20 s enrolled); ``keep``: its later segments
  given its own place; ``unknown``: its later segments called unknown when it is NOT enrolled and the fold's
  other test recordings are (all unheard audio). Rules (RULES): each place's leave-one-chunk-out threshold
  (``loo``), a threshold between that and the base items' distances to the place (``sep``), the ratio test
  against the base index (``ratio``, the daemon's default), and both (``loo+ratio``). Each rule's setting is
  chosen by nested selection: for each fold, the grid point that maximises min(keep, unknown) on the other
  two folds is scored on this one, so no fold's test audio chooses its own setting (``nested``).
* costs (shipped encoder): enrolment of 20 s (read, features, encoder, calibration, atomic write),
  per-segment search cost with 10 enrolled places, overlay memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_asc.contract import ArtifactError
from edge_asc.runtime.enrolled import Enrolment
from edge_asc.dsp.audio_io import read_audio
from edge_asc.dsp.features import FeatureExtractor, Segmenter
from edge_asc.runtime.encoder import Encoder
from edge_asc.runtime.enrol import CALIBRATION_CHUNK_S, CALIBRATION_MARGIN, CALIBRATION_QUANTILE, EMBED_BATCH, enrol
from edge_asc.runtime.enrolled import EnrolledSet
from edge_asc.runtime.index import SegmentIndex
from edge_asc.runtime.search import UNKNOWN_RATIO, Searcher
from edge_asc.training.datasets import load_dataset
from edge_asc.training.splits import split_by_recording

REPO = Path(__file__).resolve().parents[1]
FOLD_EPOCHS = 12  # per-fold encoders: the default recipe (configs/default-amb13.yaml) with fewer epochs
QUANTILES = (0.9, 0.95, 0.99, 1.0)
MARGINS = (1.0, 1.25, 1.5, 2.0, 3.0)
ENROL_SECONDS = (5.0, 10.0, 20.0)
NEG_QUANTILES = (0.001, 0.01, 0.05, 0.1)
RATIOS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5)
MIN_REST_S = 3.0  # a recording needs this much audio after the enrolled part to be scored


def recording_features(dataset, cfg, cache: Path) -> dict[str, tuple[str, np.ndarray]]:
    """recording id -> (label, features (n, frames, F)) of the whole recording streamed from its start, cut
    and featurised exactly as ``enroll`` and the daemon do (kept in ``cache``: one pass for every encoder)."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return {str(r): (str(lab), z[f"f{i}"]) for i, (r, lab) in enumerate(zip(z["recs"], z["labels"]))}
    paths = {}
    for s in dataset.scenes:
        paths.setdefault(s.recording_id, (s.label, s.path))
    extractor, out = FeatureExtractor(cfg), {}
    for rec, (label, path) in sorted(paths.items()):
        feats = [extractor.segment_features(x) for _, x in Segmenter(cfg).push(read_audio(path, cfg.sample_rate))]
        out[rec] = (label, np.stack(feats).astype(np.float32))
    recs = sorted(out)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, recs=recs, labels=[out[r][0] for r in recs], **{f"f{i}": out[r][1] for i, r in enumerate(recs)})
    return out


def embed_recordings(encoder: Encoder, feats: dict[str, tuple[str, np.ndarray]]) -> dict[str, tuple[str, np.ndarray]]:
    """recording id -> (label, embeddings (n, D)) with ``encoder``."""
    return {r: (lab, np.concatenate([encoder.embed(f[i : i + EMBED_BATCH]) for i in range(0, len(f), EMBED_BATCH)])) for r, (lab, f) in feats.items()}


@dataclass
class FoldData:
    """What one fold's measurements need: its test recordings, every recording embedded by the fold's
    encoder, and the fold's base index (vectors, model label ids) holding no test recording."""

    test: list[str]
    rec_emb: dict[str, tuple[str, np.ndarray]]
    base_vecs: np.ndarray
    base_labels: np.ndarray
    labels: tuple[str, ...]


def fold_models(dataset, splits, work: Path, epochs: int = FOLD_EPOCHS) -> list[tuple[Encoder, SegmentIndex]]:
    """One encoder per fold trained on the fold's training recordings only (the default recipe with
    ``epochs`` epochs), exported to ONNX, and its base index built from those recordings; kept in ``work``
    (fold<i>/encoder.onnx, fold<i>/index) so a rerun reuses them."""
    import logging

    from edge_asc.commands.common import train_config_from_file
    from edge_asc.config import apply_overrides
    from edge_asc.training.build_index import build_index_from_dataset
    from edge_asc.training.export import export_onnx
    from edge_asc.training.feature_cache import FeatureCache
    from edge_asc.training.train import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")  # a script, not the package
    config = apply_overrides(train_config_from_file(REPO / "configs" / "default-amb13.yaml"), {"epochs": epochs, "threads": 1})
    cache = FeatureCache.open(work / "features")
    out = []
    for i, fold in enumerate(splits):
        d = work / f"fold{i}-e{epochs}"
        onnx, index_dir = d / "encoder.onnx", d / "index"
        if not onnx.is_file():
            trained = train(config, dataset, fold.train, out_dir=d / "run", resume=(d / "run" / "checkpoint.pt").is_file(), cache=cache, progress=False)
            export_onnx(trained, onnx)
        encoder = Encoder(onnx)
        if not (index_dir / "manifest.json").is_file():
            build_index_from_dataset(encoder, dataset, fold.train, cache=cache).save(index_dir)
        out.append((encoder, SegmentIndex.load(index_dir, encoder.meta)))
    return out


def nearest(x: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest item of each row: (ids (B,), squared distances (B,))."""
    d = (x * x).sum(1)[:, None] - 2 * x @ items.T + (items * items).sum(1)[None, :]
    i = d.argmin(1)
    return i, np.maximum(d[np.arange(len(x)), i], 0)


def loo_chunk_distances(e: np.ndarray, seg_s: float) -> np.ndarray:
    """Each item's nearest distance to the items of other CALIBRATION_CHUNK_S chunks (runtime.enrol.calibrate's input)."""
    g = np.floor(np.arange(len(e)) * seg_s / CALIBRATION_CHUNK_S)
    d = (e * e).sum(1)[:, None] - 2 * e @ e.T + (e * e).sum(1)[None, :]
    d[g[:, None] == g[None, :]] = np.inf
    return np.maximum(d.min(1), 0)


def remember(data: list[FoldData], seg_s: float) -> dict:
    out = {}
    for E in (0.0,) + ENROL_SECONDS:
        n_enr = int(round(E / seg_s))
        right = total = captured = 0
        for fd in data:
            scored = [r for r in fd.test if len(fd.rec_emb[r][1]) * seg_s >= E + MIN_REST_S]
            enr_rec = np.concatenate([[r] * n_enr for r in scored]) if n_enr else np.zeros(0, str)
            items = np.concatenate([fd.base_vecs] + [fd.rec_emb[r][1][:n_enr] for r in scored])
            ilab = np.concatenate([fd.base_labels] + [np.full(n_enr, fd.labels.index(fd.rec_emb[r][0])) for r in scored])
            n_base = len(fd.base_vecs)
            for r in scored:
                q = fd.rec_emb[r][1][n_enr:]
                ids, _ = nearest(q, items)
                cls = fd.labels.index(fd.rec_emb[r][0])
                right += int((ilab[ids] == cls).sum())
                total += len(q)
                if n_enr:
                    other = (ids >= n_base) & (enr_rec[np.maximum(ids - n_base, 0)] != r) & (ilab[ids] != cls)
                    captured += int(other.sum())
        out["baseline" if E == 0 else f"{E:g}s"] = {"accuracy": right / total, "captured": captured / total, "segments": total}
    return out


def _windows(ok: np.ndarray, starts: np.ndarray, k: int) -> float:
    """Share of k-segment windows (within each recording; ``starts`` its first rows) where ``ok`` holds for a majority."""
    hits = total = 0
    for a, b in zip(starts, list(starts[1:]) + [len(ok)]):
        n = (b - a) // k
        if n:
            w = ok[a : a + n * k].reshape(n, k).sum(1) * 2 > k
            hits, total = hits + int(w.sum()), total + n
    return hits / max(total, 1)


def _grid(*axes):
    return [tuple(p) for p in np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(axes), -1).T]


# threshold rules of --enrolled-only: name -> (grid, accept(params, place stats, nearest place, its distance,
# the segment's nearest base-index distance) -> bool array). ``loo``: the place's leave-one-chunk-out quantile
# x margin (positives only); ``sep``: the geometric mean of that quantile and a low quantile of the base
# items' distances to the place (a threshold between own audio and other audio); ``ratio``: nearest place
# at most r x the nearest base-index item; ``loo+ratio``: both of ``loo`` and ``ratio``.
RULES = {
    "loo": (_grid(QUANTILES, MARGINS), lambda p, st, o, d, b: d <= st["q"][p[0]][o] * p[1]),
    "sep": (_grid((0.9, 0.95, 0.99, 1.0), NEG_QUANTILES), lambda p, st, o, d, b: d <= np.sqrt(st["q"][p[0]][o] * st["nq"][p[1]][o])),
    "ratio": (_grid(RATIOS), lambda p, st, o, d, b: d <= p[0] * b),
    "loo+ratio": (_grid((0.9, 0.95, 0.99, 1.0), MARGINS, RATIOS), lambda p, st, o, d, b: (d <= st["q"][p[0]][o] * p[1]) & (d <= p[2] * b)),
}


def _place_stats(enr: list[np.ndarray], base: np.ndarray, seg_s: float) -> dict:
    """Per place: quantiles of its leave-one-chunk-out distances (``q``) and of the base items' nearest
    distances to it (``nq``), as arrays over places."""
    loo = [loo_chunk_distances(e, seg_s) for e in enr]
    neg = [nearest(base, e)[1] for e in enr]
    qs = set(QUANTILES) | {0.9, 0.95, 0.99, 1.0}
    return {"q": {q: np.array([np.quantile(x, q) for x in loo]) for q in qs},
            "nq": {a: np.array([np.quantile(x, a) for x in neg]) for a in NEG_QUANTILES}}


def _fold_rules(fd: FoldData, seg_s: float, n_enr: int, k: int) -> dict:
    """One fold: every test recording with enough audio is a place (its first n_enr segments enrolled).
    keep: its later segments go to it; unknown: its later segments with it NOT enrolled (the other test
    recordings are) are called unknown. Every grid point of every rule."""
    places = [r for r in fd.test if len(fd.rec_emb[r][1]) * seg_s >= n_enr * seg_s + MIN_REST_S]
    enr = [fd.rec_emb[r][1][:n_enr] for r in places]
    items, owner = np.concatenate(enr), np.repeat(np.arange(len(places)), n_enr)
    rests = [fd.rec_emb[r][1][n_enr:] for r in places]
    rest, starts = np.concatenate(rests), np.cumsum([0] + [len(x) for x in rests[:-1]])
    own = np.repeat(np.arange(len(places)), [len(x) for x in rests])
    dm = np.maximum((rest * rest).sum(1)[:, None] - 2 * rest @ items.T + (items * items).sum(1)[None, :], 0)
    i_all = dm.argmin(1)
    d_all = dm[np.arange(len(rest)), i_all]
    dm[owner[None, :] == own[:, None]] = np.inf
    i_ex = dm.argmin(1)
    d_ex = dm[np.arange(len(rest)), i_ex]
    _, b = nearest(rest, fd.base_vecs)
    st = _place_stats(enr, fd.base_vecs, seg_s)
    o_all, o_ex = owner[i_all], owner[i_ex]
    out = {}
    for name, (grid, accept) in RULES.items():
        for p in grid:
            kept = (o_all == own) & accept(p, st, o_all, d_all, b)
            unk = ~accept(p, st, o_ex, d_ex, b)
            out[(name, p)] = (float(kept.mean()), float(unk.mean()), _windows(kept, starts, k), _windows(unk, starts, k))
    return {"places": len(places), "grid": out}


def enrolled_only(data: list[FoldData], seg_s: float, enrol_s: float = 20.0, k: int = 3) -> dict:
    """Per rule: nested choice of its grid point (maximise min(keep, unknown) on the other folds, score
    on this one: the test audio of a fold never chooses its own setting), and the shipped default."""
    n_enr = int(round(enrol_s / seg_s))
    per_fold = [_fold_rules(fd, seg_s, n_enr, k) for fd in data]
    names = ("keep", "unknown", f"keep_k{k}", f"unknown_k{k}")
    rules = {}
    for rule, (grid, _) in RULES.items():
        nested = []
        for f, fold in enumerate(per_fold):
            score = {p: np.mean([min(o["grid"][(rule, p)][:2]) for j, o in enumerate(per_fold) if j != f]) for p in grid}
            best = max(score, key=score.get)
            nested.append({"fold": f, "chosen": [float(v) for v in best], "places": fold["places"], **dict(zip(names, fold["grid"][(rule, best)]))})
        mean = {n: float(np.mean([x[n] for x in nested])) for n in names}
        best_mean = max(grid, key=lambda p: np.mean([min(o["grid"][(rule, p)][:2]) for o in per_fold]))
        rules[rule] = {"nested": nested, "nested_mean": mean, "best_in_hindsight": {"params": [float(v) for v in best_mean],
                       **dict(zip(names, (float(np.mean([o["grid"][(rule, best_mean)][i] for o in per_fold])) for i in range(4))))}}
    shipped = {name: {"rule": key[0], "params": list(key[1]), **dict(zip(names, (float(np.mean([o["grid"][key][i] for o in per_fold])) for i in range(4))))}
               for name, key in shipped_rules().items()}
    return {"k": k, "rules": rules, "shipped": shipped}


def costs(encoder, index, rec_emb, dataset, seg_s) -> dict:
    """Enrolment time for 20 s, per-segment search cost with 10 places, overlay memory."""
    long = {r for r in rec_emb if len(rec_emb[r][1]) * seg_s >= 20}
    first = next(s for s in dataset.scenes if s.recording_id in long)
    audio = read_audio(first.path, encoder.meta.feature_config.sample_rate)[: 20 * encoder.meta.feature_config.sample_rate]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            t0 = time.perf_counter()
            enrol(Path(tmp) / f"e{i}", encoder, "place", [("bench", audio)])
            times.append(time.perf_counter() - t0)
        recs = [r for r in rec_emb if len(rec_emb[r][1]) * seg_s >= 20][:10]
        d = Path(tmp) / "ten"
        for i, r in enumerate(recs):
            enr = EnrolledSet.load_or_empty(d, encoder.meta)
            e = rec_emb[r][1][:67]
            enr = enr.with_items(Enrolment(f"p{i}", f"place{i}", r, "t", 20.0, len(e)), e, np.arange(len(e)) * seg_s)
            enr.with_threshold(f"place{i}", 1.0, {}).save(d)
        ten = EnrolledSet.load(d, encoder.meta)
        disk = sum(p.stat().st_size for p in d.iterdir())
    queries = np.concatenate([rec_emb[r][1][100:150] for r in list(rec_emb)[:10]])
    timing = {}
    searchers = (("base", Searcher(index)), ("base+10 places", Searcher(index, ten)), ("10 places only, own thresholds", Searcher(index, ten, True)),
                 ("10 places only, ratio test (default)", Searcher(index, ten, True, unknown_ratio=UNKNOWN_RATIO)))
    for name, s in searchers:
        t = []
        for q in queries:
            t0 = time.perf_counter()
            s.query(q[None, :], 1)
            t.append(time.perf_counter() - t0)
        timing[name] = {"median_ms": 1e3 * float(np.median(t)), "p99_ms": 1e3 * float(np.percentile(t, 99))}
    import hnswlib

    h = hnswlib.Index(space="l2", dim=ten.embeddings.shape[1])
    h.init_index(max_elements=len(ten), M=16, ef_construction=200)
    h.add_items(ten.embeddings)
    h.set_ef(64)
    t = []
    for q in queries:
        t0 = time.perf_counter()
        h.knn_query(q[None, :], k=1)
        t.append(time.perf_counter() - t0)
    timing["10 places, hnswlib instead of exact"] = {"median_ms": 1e3 * float(np.median(t)), "p99_ms": 1e3 * float(np.percentile(t, 99))}
    return {"enrol_20s_s": {"median": float(np.median(times)), "runs": times}, "search": timing,
            "overlay_10_places": {"items": len(ten), "memory_bytes": ten.nbytes, "disk_bytes": disk}}


def shipped_rules() -> dict[str, tuple[str, tuple[float, ...]]]:
    """The daemon's rules as keys of RULES and grid points: the default (runtime.search: the ratio test) and
    each place's own threshold (runtime.enrol's calibration; config decision.unknown_ratio: null)."""
    return {"ratio test (default)": ("ratio", (UNKNOWN_RATIO,)),
            "own thresholds (unknown_ratio null)": ("loo", (CALIBRATION_QUANTILE, CALIBRATION_MARGIN))}


def shipped_folds(encoder: Encoder, index: SegmentIndex, feats, folds: list[list[str]]) -> list[FoldData]:
    """The shipped encoder (trained on every recording) and index with each fold's test recordings left out."""
    rec_emb = embed_recordings(encoder, feats)
    vecs, rec, lab = index.vectors(), index.recording_ids, index.item_labels
    return [FoldData(test, rec_emb, vecs[~np.isin(rec, test)], lab[~np.isin(rec, test)], tuple(index.labels)) for test in folds]


def honest_folds(dataset, splits, feats, folds: list[list[str]], work: Path, epochs: int) -> list[FoldData]:
    """Per fold: an encoder trained on its training recordings only, its index of those recordings."""
    out = []
    for (encoder, index), test in zip(fold_models(dataset, splits, work, epochs), folds):
        out.append(FoldData(test, embed_recordings(encoder, feats), index.vectors(), index.item_labels, tuple(index.labels)))
    return out


def add_fold_arguments(p: argparse.ArgumentParser) -> None:
    """--data, --work, --epochs, --json, --model: what the per-fold encoders are made from (shared with
    bench_enroll_rules.py and bench_novelty.py, which reuse the fold models this script trains under --work)."""
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ambient13")
    p.add_argument("--model", type=Path, default=REPO / "models" / "edge-asc-amb13.onnx", help="the shipped encoder; its feature settings make the fold features")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_enroll", help="fold models, feature caches (kept for reruns)")
    p.add_argument("--epochs", type=int, default=FOLD_EPOCHS, help=f"training epochs of the fold encoders (default {FOLD_EPOCHS})")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")


def recording_folds(dataset, cfg, work: Path):
    """(splits, each fold's test recording ids, every recording's features): 3 folds grouped by recording, seed 0."""
    splits = split_by_recording(dataset, 3, 0)
    folds = [sorted({dataset.scenes[i].recording_id for i in f.test}) for f in splits]
    return splits, folds, recording_features(dataset, cfg, work / "recording_features.npz")


def folds_from_arguments(args: argparse.Namespace):
    """(feature config, each fold's FoldData) for add_fold_arguments' arguments: the fold models under --work."""
    dataset = load_dataset(args.data)
    cfg = Encoder(args.model).meta.feature_config
    splits, folds, feats = recording_folds(dataset, cfg, args.work)
    return cfg, honest_folds(dataset, splits, feats, folds, args.work, args.epochs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_fold_arguments(p)
    p.add_argument("--index", type=Path, default=REPO / "index" / "edge-asc-amb13")
    args = p.parse_args(argv)
    try:
        encoder = Encoder(args.model)
        index = SegmentIndex.load(args.index, encoder.meta)
    except ArtifactError as exc:
        print(exc, file=sys.stderr)
        return 2
    dataset = load_dataset(args.data)
    seg_s = encoder.meta.feature_config.segment_seconds
    splits, folds, feats = recording_folds(dataset, encoder.meta.feature_config, args.work)
    res = {"recordings": len(feats), "folds": "3, grouped by recording (training.splits.split_by_recording, seed 0)"}
    for name, data in (("honest", honest_folds(dataset, splits, feats, folds, args.work, args.epochs)), ("shipped", shipped_folds(encoder, index, feats, folds))):
        res[name] = {"remember": remember(data, seg_s), "enrolled_only": enrolled_only(data, seg_s)}
    res["honest"]["note"] = (f"per fold: an encoder trained {args.epochs} epochs (default recipe otherwise) on the fold's training recordings "
                             "only and an index of them; every figure is on the fold's unheard test recordings")
    res["shipped"]["note"] = "the shipped encoder was trained on ALL recordings (test ones included): optimistic; test recordings are left out of the index only"
    res["costs"] = costs(encoder, index, embed_recordings(encoder, feats), dataset, seg_s)
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


def report(res: dict) -> None:
    print(f"{res['recordings']} recordings; folds: {res['folds']}")
    for name in ("honest", "shipped"):
        r = res[name]
        print(f"\n=== {name}: {r['note']}")
        print("remember this place (default mode)   accuracy  captured  segments")
        for e, x in r["remember"].items():
            print(f"  enrol {e:<24}      {x['accuracy']:.3f}     {x['captured']:.4f}    {x['segments']}")
        eo = r["enrolled_only"]
        k = eo["k"]
        print(f"enrolled-only, 20 s enrolled: keep / unknown per segment; k={k} windows  (nested choice per fold; best in hindsight)")
        for name, x in eo["shipped"].items():
            print(f"  shipped: {name} {x['rule']} {x['params']}: {x['keep']:.3f} / {x['unknown']:.3f};  {x[f'keep_k{k}']:.3f} / {x[f'unknown_k{k}']:.3f}")
        for rule, x in eo["rules"].items():
            m, h = x["nested_mean"], x["best_in_hindsight"]
            chosen = " ".join(str(n["chosen"]) for n in x["nested"])
            print(f"  {rule:<10} nested {m['keep']:.3f} / {m['unknown']:.3f};  {m[f'keep_k{k}']:.3f} / {m[f'unknown_k{k}']:.3f}   chosen {chosen}"
                  f"   hindsight {h['params']} {h['keep']:.3f} / {h['unknown']:.3f}")
    c = res["costs"]
    print(f"\nenrolment of 20 s: {c['enrol_20s_s']['median']:.2f} s (median of 3)")
    for name, t in c["search"].items():
        print(f"  search {name:<38} median {t['median_ms']:.4f} ms  p99 {t['p99_ms']:.4f} ms")
    o = c["overlay_10_places"]
    print(f"  overlay of 10 places: {o['items']} items, {o['memory_bytes'] / 1024:.0f} KiB in memory, {o['disk_bytes'] / 1024:.0f} KiB on disk")


if __name__ == "__main__":
    sys.exit(main())
