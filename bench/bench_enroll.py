"""Benchmark: remembering places on ambient13 with the shipped model and index (edge-asc enroll).

    OMP_NUM_THREADS=1 python bench/bench_enroll.py --json bench/results/bench_enroll.json

Folds grouped by recording (edge_asc.training.splits.split_by_recording, 3 folds). Every recording is
embedded once as a stream from its start, exactly as ``enroll`` and the daemon cut it (runtime.enrol.embed_samples).
The shipped index holds every recording; for fold f its items of f's test recordings are left out, so a test
recording is never found in the base index (the encoder itself was trained on all 51 recordings: a
limitation, stated in the output).

* remember (default mode): each test recording's first E s (5/10/20) are enrolled under its class label;
  the rest of it is classified by its nearest item in base + enrolled. ``accuracy``: share of those segments
  given the right class (``baseline``: without enrolment); ``captured``: share of test segments whose nearest
  item is an enrolled item of *another* recording of *another* class (harm done to other places).
* enrolled-only: each test recording of fold f is a place of its own (first 20 s enrolled, threshold
  calibrated from that audio: runtime.enrol.calibrate); ``keep``: rest-of-recording segments given their own
  place; ``unknown``: segments of the other folds' recordings (places never enrolled) called unknown.
  Threshold settings (quantile x margin) are chosen by nested selection: for each fold, the grid point that
  maximises min(keep, unknown) on the other two folds is scored on this one (``nested``); the grid itself is
  printed so the shipped default can be checked against it.
* costs: enrolment of 20 s (read, features, encoder, calibration, atomic write), per-segment search cost with
  10 enrolled places (base only / base + overlay / overlay only, exact vs a small hnswlib index), overlay memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_asc.contract import ArtifactError
from edge_asc.runtime.enrolled import Enrolment
from edge_asc.dsp.audio_io import read_audio
from edge_asc.runtime.encoder import Encoder
from edge_asc.runtime.enrol import CALIBRATION_CHUNK_S, CALIBRATION_MARGIN, CALIBRATION_QUANTILE, embed_samples, enrol
from edge_asc.runtime.enrolled import EnrolledSet
from edge_asc.runtime.index import SegmentIndex
from edge_asc.runtime.search import Searcher
from edge_asc.training.datasets import load_dataset
from edge_asc.training.splits import split_by_recording

REPO = Path(__file__).resolve().parents[1]
FOLD_EPOCHS = 12  # per-fold encoders: the default recipe (configs/default-amb13.yaml) with fewer epochs
QUANTILES = (0.9, 0.95, 0.99, 1.0)
MARGINS = (1.0, 1.25, 1.5, 2.0, 3.0)
ENROL_SECONDS = (5.0, 10.0, 20.0)
MIN_REST_S = 3.0  # a recording needs this much audio after the enrolled part to be scored


def embed_recordings(encoder: Encoder, dataset, cache: Path) -> dict[str, tuple[str, np.ndarray]]:
    """recording id -> (label, embeddings (n, D)) of the whole recording streamed from its start."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["sha"]) == encoder.meta.sha256:
                return {str(r): (str(lab), z[f"e{i}"]) for i, (r, lab) in enumerate(zip(z["recs"], z["labels"]))}
    paths = {}
    for s in dataset.scenes:
        paths.setdefault(s.recording_id, (s.label, s.path))
    out = {}
    for rec, (label, path) in sorted(paths.items()):
        out[rec] = (label, embed_samples(encoder, read_audio(path, encoder.meta.feature_config.sample_rate))[0])
    recs = sorted(out)
    np.savez(cache, sha=encoder.meta.sha256, recs=recs, labels=[out[r][0] for r in recs], **{f"e{i}": out[r][1] for i, r in enumerate(recs)})
    return out


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


def remember(rec_emb, folds, index, labels, seg_s) -> dict:
    vecs, item_rec, item_lab = index.vectors(), index.recording_ids, index.item_labels
    out = {}
    for E in (0.0,) + ENROL_SECONDS:
        n_enr = int(round(E / seg_s))
        right = total = captured = 0
        for test in folds:
            keep = ~np.isin(item_rec, list(test))
            scored = [r for r in test if len(rec_emb[r][1]) * seg_s >= E + MIN_REST_S]
            enr_v = [rec_emb[r][1][:n_enr] for r in scored]
            enr_rec = np.concatenate([[r] * n_enr for r in scored]) if n_enr else np.zeros(0, str)
            items = np.concatenate([vecs[keep]] + enr_v)
            ilab = np.concatenate([item_lab[keep]] + [np.full(n_enr, labels.index(rec_emb[r][0])) for r in scored])
            n_base = int(keep.sum())
            for r in scored:
                q = rec_emb[r][1][n_enr:]
                ids, _ = nearest(q, items)
                cls = labels.index(rec_emb[r][0])
                right += int((ilab[ids] == cls).sum())
                total += len(q)
                enrolled = ids >= n_base
                if n_enr:
                    other = enrolled & (enr_rec[np.maximum(ids - n_base, 0)] != r) & (ilab[ids] != cls)
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


def enrolled_only(rec_emb, folds, seg_s, enrol_s=20.0, k=3) -> dict:
    """Grid of (quantile, margin) -> per fold keep / unknown (segments, and k-segment majority windows), and
    the nested choice."""
    n_enr = int(round(enrol_s / seg_s))
    per_fold = []
    for test in folds:
        places = [r for r in test if len(rec_emb[r][1]) * seg_s >= enrol_s + MIN_REST_S]
        enr = [rec_emb[r][1][:n_enr] for r in places]
        items = np.concatenate(enr)
        owner = np.concatenate([np.full(n_enr, i) for i in range(len(places))])
        loo = [loo_chunk_distances(e, seg_s) for e in enr]
        rests = [rec_emb[r][1][n_enr:] for r in places]
        rest, rest_starts = np.concatenate(rests), np.cumsum([0] + [len(x) for x in rests[:-1]])
        rest_owner = np.concatenate([np.full(len(x), i) for i, x in enumerate(rests)])
        others_l = [rec_emb[r][1] for r in rec_emb if r not in test]
        others, other_starts = np.concatenate(others_l), np.cumsum([0] + [len(x) for x in others_l[:-1]])
        ids_r, d_r = nearest(rest, items)
        ids_o, d_o = nearest(others, items)
        grid = {}
        for q in QUANTILES:
            for m in MARGINS:
                thr = np.array([np.quantile(x, q) * m for x in loo])
                kept = (owner[ids_r] == rest_owner) & (d_r <= thr[owner[ids_r]])
                unk = d_o > thr[owner[ids_o]]
                grid[(q, m)] = (float(kept.mean()), float(unk.mean()), _windows(kept, rest_starts, k), _windows(unk, other_starts, k))
        per_fold.append({"places": len(places), "grid": grid})
    nested = []
    for f, fold in enumerate(per_fold):
        score = {g: np.mean([min(o["grid"][g][:2]) for j, o in enumerate(per_fold) if j != f]) for g in fold["grid"]}
        best = max(score, key=score.get)
        nested.append({"fold": f, "chosen": best, "places": fold["places"], **dict(zip(("keep", "unknown", f"keep_k{k}", f"unknown_k{k}"), fold["grid"][best]))})
    mean = {g: tuple(float(np.mean([o["grid"][g][i] for o in per_fold])) for i in range(4)) for g in per_fold[0]["grid"]}
    shipped = (CALIBRATION_QUANTILE, CALIBRATION_MARGIN)
    return {"k": k, "nested": nested, "grid_mean": {f"q{q}xm{m}": v for (q, m), v in mean.items()},
            "shipped": {"quantile": shipped[0], "margin": shipped[1], **dict(zip(("keep", "unknown", f"keep_k{k}", f"unknown_k{k}"), mean[shipped]))}}


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
    for name, s in (("base", Searcher(index)), ("base+10 places", Searcher(index, ten)), ("10 places only", Searcher(index, ten, True))):
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ambient13")
    p.add_argument("--model", type=Path, default=REPO / "models" / "edge-asc-amb13.onnx")
    p.add_argument("--index", type=Path, default=REPO / "index" / "edge-asc-amb13")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench_enroll_embeddings.npz")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    try:
        encoder = Encoder(args.model)
        index = SegmentIndex.load(args.index, encoder.meta)
    except ArtifactError as exc:
        print(exc, file=sys.stderr)
        return 2
    dataset = load_dataset(args.data)
    seg_s = encoder.meta.feature_config.segment_seconds
    t0 = time.perf_counter()
    rec_emb = embed_recordings(encoder, dataset, args.cache)
    folds = [sorted({dataset.scenes[i].recording_id for i in f.test}) for f in split_by_recording(dataset, 3, 0)]
    res = {"recordings": len(rec_emb), "embed_s": time.perf_counter() - t0,
           "note": "the shipped encoder was trained on all ambient13 recordings; test recordings are left out of the base index only",
           "remember": remember(rec_emb, folds, index, list(index.labels), seg_s),
           "enrolled_only": enrolled_only(rec_emb, folds, seg_s), "costs": costs(encoder, index, rec_emb, dataset, seg_s)}
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


def report(res: dict) -> None:
    print(f"{res['recordings']} recordings embedded in {res['embed_s']:.1f} s; {res['note']}")
    print("\nremember this place (default mode)   accuracy  captured  segments")
    for name, r in res["remember"].items():
        print(f"  enrol {name:<24}      {r['accuracy']:.3f}     {r['captured']:.4f}    {r['segments']}")
    eo = res["enrolled_only"]
    k = eo["k"]
    print(f"\nenrolled-only, 20 s enrolled          keep    unknown  keep(k={k}) unknown(k={k})  (nested choice of quantile x margin)")
    for n in eo["nested"]:
        print(f"  fold {n['fold']} ({n['places']} places) q{n['chosen'][0]} x {n['chosen'][1]}       {n['keep']:.3f}   {n['unknown']:.3f}    {n[f'keep_k{k}']:.3f}     {n[f'unknown_k{k}']:.3f}")
    s = eo["shipped"]
    print(f"  shipped q{s['quantile']} x {s['margin']}, mean of folds   {s['keep']:.3f}   {s['unknown']:.3f}    {s[f'keep_k{k}']:.3f}     {s[f'unknown_k{k}']:.3f}")
    print(f"  grid (mean keep / unknown, segments; k={k} windows): " + "  ".join(f"{g} {v[0]:.2f}/{v[1]:.2f};{v[2]:.2f}/{v[3]:.2f}" for g, v in eo["grid_mean"].items()))
    c = res["costs"]
    print(f"\nenrolment of 20 s: {c['enrol_20s_s']['median']:.2f} s (median of 3)")
    for name, t in c["search"].items():
        print(f"  search {name:<38} median {t['median_ms']:.4f} ms  p99 {t['p99_ms']:.4f} ms")
    o = c["overlay_10_places"]
    print(f"  overlay of 10 places: {o['items']} items, {o['memory_bytes'] / 1024:.0f} KiB in memory, {o['disk_bytes'] / 1024:.0f} KiB on disk")


if __name__ == "__main__":
    sys.exit(main())
