"""Training throughput with 1 and 2 ranks (DistributedDataParallel, gloo) on a dataset (ambient13 by default),
the default recipe, from a warm feature cache.

    python bench/bench_ddp.py [--data ../shared/data/ambient13] [--epochs 3] [--cpus 2] [--json]

First a warm-up run fills a temporary cache with the clean features and the augmentation draws of the
epochs measured; then, on the same cache, ``edge-asc train`` with 1 rank x CPUS threads and with 2 ranks x
CPUS/2 threads (``--workers 2``): the fair comparison on a machine of CPUS cores. Reported from each run's
own checkpoint history: training segments per second (the epoch's segments over its wall time, median over
the epochs), one epoch's wall time, and of it the features' (reading the cache) share.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_asc.training.checkpoint import load_checkpoint


def train(data: Path, out: Path, cache: Path, epochs: int, ranks: int, threads: int) -> float:
    """One ``edge-asc train`` run; its wall time in seconds."""
    cmd = [sys.executable, "-m", "edge_asc", "--log-level", "WARNING", "train", "--data", str(data), "--out", str(out),
           "--epochs", str(epochs), "--threads", str(threads), "--cache-dir", str(cache), "--workers", str(ranks)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ambient13"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2, help="cores to share: 1 rank x CPUS threads vs 2 ranks x CPUS/2 (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        warm = train(args.data, Path(tmp) / "warm", cache, args.epochs, 1, args.cpus)
        for ranks in (1, 2):
            threads = max(1, args.cpus // ranks)
            out = Path(tmp) / f"r{ranks}"
            wall = train(args.data, out, cache, args.epochs, ranks, threads)
            hist = load_checkpoint(out).history
            secs = np.array([h.seconds for h in hist])
            rows.append({
                "ranks": ranks, "threads_per_rank": threads, "segments_per_epoch": hist[0].segments,
                "segments_per_s": float(np.median([h.segments / h.seconds for h in hist])),
                "epoch_s": float(np.median(secs)), "feature_s": float(np.median([h.feature_seconds for h in hist])),
                "wall_s": wall,
            })
        cache_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e6
    result = {"data": str(args.data), "epochs": args.epochs, "cpus": args.cpus, "warm_up_s": warm, "cache_mb": cache_mb, "runs": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.data}: {args.epochs} epochs, default recipe, warm cache ({cache_mb:.0f} MB; warm-up run {warm:.1f} s)")
    print(f"{'ranks':>5} {'threads':>7} {'seg/epoch':>9} {'seg/s':>8} {'epoch s':>8} {'features s':>10} {'run wall s':>10}")
    for r in rows:
        print(f"{r['ranks']:>5} {r['threads_per_rank']:>7} {r['segments_per_epoch']:>9} {r['segments_per_s']:>8.0f} "
              f"{r['epoch_s']:>8.2f} {r['feature_s']:>10.2f} {r['wall_s']:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
