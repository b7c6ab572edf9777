"""Benchmark: ONNX encoder time per segment, and hnswlib build time, query time and recall@1 against exact search.

    OMP_NUM_THREADS=1 python bench/bench_encoder_index.py --sizes 100000,1000000 --json bench/results/encoder_index.json

* Encoder: ``edge_asc.runtime.encoder.Encoder(threads=1).embed`` on one segment at a time (batch 1), median and
  p99 over ``--encoder-runs`` calls on real features of the DCASE fixture clip. Without ``--model`` an
  untrained encoder of the default size (hidden 64, D = 129) is exported first (torch needed); untrained
  weights cost exactly what trained ones do.
* Index: ``SegmentIndex.build`` over N random vectors of the embedding size, then single queries
  (``SegmentIndex.query`` with k = 1, one thread) for each ``--ef``; recall@1 is the share of queries whose
  returned item is the exact nearest neighbour (numpy brute force; a tie at equal distance counts as a hit).
  Data (``--data``):
    - ``gaussian``: items and queries iid N(0, I_D), the literal "random vectors". In 129 dimensions the
      nearest neighbour of a random query is barely nearer than the rest (see the contrast column), the
      worst case for any approximate search;
    - ``lowrank``: items and queries z A + 0.1 n with z ~ N(0, I_16), A a random orthonormal 16 x D map and
      n ~ N(0, I_D): random vectors on a 16-dimensional structure, as learned embeddings are;
    - ``index:DIR``: the stored vectors of a real index; ``--queries`` of them are held out as queries and
      the rest indexed (N is then the index size, ``--sizes`` is ignored).
  Times: wall clock per call (median, p99) and the calling thread's CPU time (median), which is what a
  call costs when other processes share the cores.
  ``contrast`` is the median over queries of (mean distance to the items) / (distance to the nearest), a
  measure of how hard the data is (near 1: hopeless; large: easy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_asc.contract import DEFAULT_EF, DEFAULT_EF_CONSTRUCTION, DEFAULT_M, ModelMeta
from edge_asc.runtime.encoder import Encoder
from edge_asc.dsp.features import FeatureConfig, FeatureExtractor
from edge_asc.runtime.index import SegmentIndex

FIXTURE_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
LOWRANK_DIM = 16
LOWRANK_NOISE = 0.1
EXACT_CHUNK = 50_000  # items per brute-force block
EXACT_CANDIDATES = 8  # float32 candidates per block, re-ranked in float64
WARMUP = 50


@dataclass
class Timing:
    median_ms: float  # wall clock
    p99_ms: float
    mean_ms: float
    cpu_median_ms: float  # this thread's CPU time: what the call costs when the machine is shared

    @classmethod
    def of(cls, ns: np.ndarray, cpu_ns: np.ndarray) -> "Timing":
        ms = np.asarray(ns, dtype=np.float64) / 1e6
        return cls(float(np.median(ms)), float(np.percentile(ms, 99)), float(ms.mean()), float(np.median(cpu_ns) / 1e6))


@dataclass
class IndexResult:
    data: str
    n: int
    dim: int
    M: int
    ef_construction: int
    build_s: float
    contrast: float
    queries: int
    per_ef: list[dict] = field(default_factory=list)  # {"ef", "recall_at_1", "median_ms", "p99_ms", "mean_ms"}


# --- encoder ----------------------------------------------------------------------------------------------


def default_model(tmp: Path) -> Path:
    """Export an untrained default-size encoder (hidden 64, audio variant) with edge_asc.training.export."""
    import torch

    from edge_asc.training.checkpoint import TrainedModel
    from edge_asc.training.config import TrainConfig
    from edge_asc.training.export import export_onnx
    from edge_asc.training.model import EncoderNet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = TrainConfig()
    labels = tuple(f"class{i:02d}" for i in range(13))
    net = EncoderNet(config.model, config.features.n_features, config.features.frames_per_segment)
    return export_onnx(TrainedModel(model=net, config=config, labels=labels, epoch=0), tmp / "bench.onnx")


def fixture_features(cfg: FeatureConfig, n: int) -> np.ndarray:
    """(n, 20, 52) features of real audio (the DCASE fixture clip, repeated), or of noise without it."""
    from edge_asc.dsp.audio_io import read_audio

    clips = sorted(FIXTURE_DIR.glob("*.wav")) + sorted(FIXTURE_DIR.glob("*.flac"))
    if clips:
        audio = read_audio(clips[0], cfg.sample_rate)
        source = clips[0].name
    else:
        audio = np.random.default_rng(0).standard_normal(cfg.sample_rate * 10).astype(np.float32) * 0.1
        source = "white noise"
    feats = FeatureExtractor(cfg).signal_features(audio)  # (S, 20, 52)
    print(f"encoder input: {feats.shape[0]} segments of {source}")
    return feats[np.arange(n) % feats.shape[0]]


def bench_encoder(model: Path, runs: int) -> dict:
    encoder = Encoder(model, threads=1)
    feats = fixture_features(encoder.meta.feature_config, runs)
    for i in range(WARMUP):
        encoder.embed(feats[i : i + 1])
    ns, cpu = np.empty(runs, dtype=np.int64), np.empty(runs, dtype=np.int64)
    for i in range(runs):
        x = feats[i : i + 1]  # (1, 20, 52)
        c, t = time.thread_time_ns(), time.perf_counter_ns()
        encoder.embed(x)
        ns[i], cpu[i] = time.perf_counter_ns() - t, time.thread_time_ns() - c
    timing = Timing.of(ns, cpu)
    return {"model": str(model), "embedding_size": encoder.meta.embedding_size, "runs": runs, **asdict(timing)}


# --- data and exact search ------------------------------------------------------------------------------


def make_data(kind: str, n: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, dim), dtype=np.float32), rng.standard_normal((n_queries, dim), dtype=np.float32)
    if kind == "lowrank":
        basis = np.linalg.qr(rng.standard_normal((dim, LOWRANK_DIM)))[0].T.astype(np.float32)  # (16, D)

        def draw(m: int) -> np.ndarray:
            out = np.empty((m, dim), dtype=np.float32)
            for s in range(0, m, 100_000):
                k = min(m, s + 100_000) - s
                out[s : s + k] = rng.standard_normal((k, LOWRANK_DIM), dtype=np.float32) @ basis
                out[s : s + k] += LOWRANK_NOISE * rng.standard_normal((k, dim), dtype=np.float32)
            return out

        return draw(n), draw(n_queries)
    if kind.startswith("index:"):
        vectors = SegmentIndex.load(kind.split(":", 1)[1]).vectors()
        order = rng.permutation(vectors.shape[0])
        return vectors[order[n_queries:]], vectors[order[:n_queries]]
    raise SystemExit(f"unknown --data {kind!r}: gaussian, lowrank or index:DIR")


def exact_search(items: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact nearest item of each query: (ids (Q,), squared distances (Q,) float64, mean squared distance (Q,))."""
    q64 = queries.astype(np.float64)
    qn = (queries.astype(np.float32) ** 2).sum(1)  # (Q,)
    cand_ids, total = [], np.zeros(queries.shape[0])
    for start in range(0, items.shape[0], EXACT_CHUNK):
        block = items[start : start + EXACT_CHUNK]  # (C, D)
        d2 = qn[:, None] - 2.0 * (queries @ block.T) + (block * block).sum(1)[None, :]  # (Q, C) float32
        total += d2.sum(1, dtype=np.float64)
        k = min(EXACT_CANDIDATES, block.shape[0])
        cand_ids.append(start + np.argpartition(d2, k - 1, axis=1)[:, :k])
    cand = np.concatenate(cand_ids, axis=1)  # (Q, candidates)
    exact = ((items[cand].astype(np.float64) - q64[:, None, :]) ** 2).sum(-1)  # (Q, candidates)
    best = exact.argmin(1)
    rows = np.arange(queries.shape[0])
    return cand[rows, best], exact[rows, best], total / items.shape[0]


def bench_meta(dim: int) -> ModelMeta:
    """The encoder description stored with a synthetic index (no encoder computed these vectors)."""
    return ModelMeta(labels=("synthetic",), feature_config=FeatureConfig(), embedding_size=dim, variant="audio",
                     version="bench", format=1, sha256="0" * 64, path="(random vectors)")


def bench_index(kind: str, n: int, n_queries: int, dim: int, M: int, ef_construction: int, efs: list[int],
                threads: int, seed: int) -> IndexResult:
    t0 = time.perf_counter()
    items, queries = make_data(kind, n, n_queries, dim, seed)
    n, dim = items.shape
    print(f"[{kind} n={n}] data {time.perf_counter() - t0:.1f} s; exact search...", flush=True)
    t0 = time.perf_counter()
    truth, truth_d2, mean_d2 = exact_search(items, queries)
    contrast = float(np.median(np.sqrt(mean_d2 / np.maximum(truth_d2, 1e-30))))
    print(f"[{kind} n={n}] exact search {time.perf_counter() - t0:.1f} s; building (M={M}, ef_construction={ef_construction}, "
          f"{threads} thread{'s' if threads > 1 else ''})...", flush=True)
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - t0
        print(f"  {done}/{total} items, {elapsed:.0f} s, ~{elapsed / done * (total - done):.0f} s left", flush=True)

    zeros = np.zeros(n, dtype=np.int64)
    index = SegmentIndex.build(items, zeros, zeros, zeros, bench_meta(dim), M=M, ef_construction=ef_construction,
                               threads=threads, progress=progress if n >= 200_000 else None)
    build_s = time.perf_counter() - t0
    result = IndexResult(kind, n, dim, M, ef_construction, build_s, contrast, n_queries)
    index.set_threads(1)  # queries: one thread, as in the daemon
    del items
    for ef in efs:
        index.set_ef(ef)
        for i in range(min(WARMUP, n_queries)):
            index.query(queries[i : i + 1], k=1)
        ns, cpu = np.empty(n_queries, dtype=np.int64), np.empty(n_queries, dtype=np.int64)
        found = np.empty(n_queries, dtype=np.int64)
        found_d2 = np.empty(n_queries, dtype=np.float64)
        for i in range(n_queries):
            q = queries[i : i + 1]  # (1, D)
            c, t = time.thread_time_ns(), time.perf_counter_ns()
            _, d2, ids = index.query(q, k=1)
            ns[i], cpu[i] = time.perf_counter_ns() - t, time.thread_time_ns() - c
            found[i], found_d2[i] = ids[0, 0], d2[0, 0]
        exact_found = ((index.vectors(found).astype(np.float64) - queries.astype(np.float64)) ** 2).sum(1)
        hit = (found == truth) | (exact_found <= truth_d2 * (1 + 1e-9))
        timing = Timing.of(ns, cpu)
        result.per_ef.append({"ef": ef, "recall_at_1": float(hit.mean()), **asdict(timing)})
        print(f"  ef={ef:<5d} recall@1 {hit.mean():.4f}  median {timing.median_ms:.4f} ms  p99 {timing.p99_ms:.4f} ms  "
              f"cpu median {timing.cpu_median_ms:.4f} ms", flush=True)
    return result


# --- report ---------------------------------------------------------------------------------------------


def print_table(encoder: dict | None, results: list[IndexResult]) -> None:
    print()
    if encoder:
        print(f"ONNX encoder, batch 1, 1 thread ({encoder['runs']} runs, D={encoder['embedding_size']}): "
              f"median {encoder['median_ms']:.4f} ms, p99 {encoder['p99_ms']:.4f} ms, cpu median {encoder['cpu_median_ms']:.4f} ms per segment")
    if not results:
        return
    print()
    head = f"{'data':<10} {'N':>9} {'D':>4} {'M':>3} {'efC':>4} {'build s':>8} {'contrast':>8} {'ef':>5} {'recall@1':>8} {'median ms':>10} {'p99 ms':>8} {'cpu med ms':>10}"
    print(head)
    print("-" * len(head))
    for r in results:
        for row in r.per_ef:
            print(f"{r.data[:10]:<10} {r.n:>9d} {r.dim:>4d} {r.M:>3d} {r.ef_construction:>4d} {r.build_s:>8.1f} {r.contrast:>8.3f} "
                  f"{row['ef']:>5d} {row['recall_at_1']:>8.4f} {row['median_ms']:>10.4f} {row['p99_ms']:>8.4f} {row['cpu_median_ms']:>10.4f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="ONNX encoder (default: export an untrained default-size one)")
    p.add_argument("--encoder-runs", type=int, default=2000, help="batch-1 encoder calls timed (0: skip the encoder)")
    p.add_argument("--sizes", default="100000,1000000", help="comma-separated index sizes (empty: skip the index)")
    p.add_argument("--data", default="gaussian,lowrank", help="comma-separated: gaussian, lowrank, index:DIR")
    p.add_argument("--dim", type=int, default=129, help="vector size (129 = 2 * hidden 64 + 1)")
    p.add_argument("--queries", type=int, default=1000, help="single queries timed per ef")
    p.add_argument("--M", dest="M", type=int, default=DEFAULT_M, help="hnswlib M")
    p.add_argument("--ef-construction", type=int, default=DEFAULT_EF_CONSTRUCTION, help="hnswlib ef_construction")
    p.add_argument("--ef", default=f"16,32,{DEFAULT_EF},128,256", help="comma-separated search breadths")
    p.add_argument("--threads", type=int, default=1, help="hnswlib build threads (queries always use one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    efs = [int(e) for e in args.ef.split(",") if e.strip()]
    kinds = [k for k in args.data.split(",") if k.strip()]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    encoder = None
    if args.encoder_runs > 0:
        with tempfile.TemporaryDirectory() as tmp:
            model = args.model or default_model(Path(tmp))
            encoder = bench_encoder(model, args.encoder_runs)
            if args.model is None:
                encoder["model"] = "untrained default encoder (hidden 64, audio variant), exported by edge_asc.training.export"
        print(f"encoder: median {encoder['median_ms']:.4f} ms, p99 {encoder['p99_ms']:.4f} ms per segment", flush=True)

    results = []
    for kind in kinds:
        for n in sizes[:1] if kind.startswith("index:") else sizes:
            results.append(bench_index(kind, n, args.queries, args.dim, args.M, args.ef_construction, efs, args.threads, args.seed))
    print_table(encoder, results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": {"processor": platform.processor(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
                  "encoder": encoder, "index": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
