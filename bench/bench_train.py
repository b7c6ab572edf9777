"""Training throughput: the default recipe on a whole dataset (ambient13 by default), on 2 threads.

    python bench/bench_train.py [--data ../shared/data/ambient13] [--threads 2] [--epochs N] [--extract-workers N]
                                [--cache-dir DIR] [--out runs/bench]

Runs the same training twice with one feature cache (a fresh temporary one unless --cache-dir): the first
run extracts every draw into the cache (cold), the second reads them (warm), as a resumed run, a second
run or the evaluation's units do. Prints for each the wall time in all, the extraction before the first
epoch, and per epoch (from the trainer's own history) the time reading the epoch's features and the
optimisation, with the segments per second sustained.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge_asc.training.datasets import load_dataset
from edge_asc.training.feature_cache import FeatureCache
from edge_asc.training.train import TrainConfig, train


def report(run: str, history, wall: float) -> None:
    segs = np.array([h.segments for h in history])
    secs = np.array([h.seconds for h in history])
    feat = np.array([h.feature_seconds for h in history])
    training = secs.sum()
    print(f"{run}: {wall:.1f} s in all, of which {wall - training:.1f} s before the first epoch (listing, extraction of "
          f"the draws not yet cached) and {training:.1f} s in epochs")
    print(f"  per epoch: median {np.median(secs):.2f} s (features {np.median(feat):.2f} s, optimisation "
          f"{np.median(secs - feat):.2f} s) for {int(np.median(segs))} segments; {segs.sum() / secs.sum():.0f} segments/s")
    print(f"  final loss {history[-1].loss:.4f}, importance {history[-1].importance:.2f}")


def main() -> int:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ambient13"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=defaults.epochs, help="(default: %(default)s, the trainer's default)")
    ap.add_argument("--variant", default=defaults.model.variant)
    ap.add_argument("--extract-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: a fresh temporary one, deleted)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    config = dataclasses.replace(defaults, threads=args.threads, epochs=args.epochs,
                                 model=dataclasses.replace(defaults.model, variant=args.variant))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; torch {torch.__version__}, "
          f"{args.threads} threads; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    dataset = load_dataset(args.data)
    print(f"data: {dataset.summary()}")
    print(f"variant {config.model.variant}, hidden {config.model.hidden_size}, {config.epochs} epochs, batch {config.batch_size}, "
          f"augmentation {'on' if config.augment.enabled else 'off'}, {args.extract_workers} extraction workers")
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache.open(args.cache_dir or Path(tmp) / "cache")
        for run in ("cold cache", "warm cache"):
            t0 = time.perf_counter()
            trained = train(config, dataset, out_dir=Path(tmp) / run.replace(" ", "-"), cache=cache, workers=args.extract_workers)
            wall = time.perf_counter() - t0
            report(run, trained.history, wall)
        print(f"cache on disk: {cache.size_bytes() / 2**20:.1f} MiB ({config.epochs} draws + the clean features)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
