"""Training throughput: the default recipe on a whole dataset (ambient13 by default), on 2 threads.

    python bench/bench_train.py [--data ../shared/data/ambient13] [--threads 2] [--epochs N] [--out runs/bench]

Prints the wall time of reading + featurising the data, of training (per epoch and in all), and the
segments per second the trainer sustains (augmented features are recomputed every epoch, so this includes
feature extraction), from the trainer's own per-epoch history.
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
from edge_asc.training.train import TrainConfig, train


def main() -> int:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ambient13"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=defaults.epochs, help="(default: %(default)s, the trainer's default)")
    ap.add_argument("--variant", default=defaults.model.variant)
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one, deleted)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    config = dataclasses.replace(defaults, threads=args.threads, epochs=args.epochs,
                                 model=dataclasses.replace(defaults.model, variant=args.variant))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; torch {torch.__version__}, "
          f"{args.threads} threads; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    t0 = time.perf_counter()
    dataset = load_dataset(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        t1 = time.perf_counter()
        trained = train(config, dataset, out_dir=out)
        t2 = time.perf_counter()
    hist = trained.history
    segs = np.array([h.segments for h in hist])
    secs = np.array([h.seconds for h in hist])
    feat = np.array([h.feature_seconds for h in hist])
    print(f"data: {dataset.summary()}")
    print(f"variant {config.model.variant}, hidden {config.model.hidden_size}, {config.epochs} epochs, batch {config.batch_size}, "
          f"augmentation {'on' if config.augment.enabled else 'off'}")
    print(f"wall time: {t2 - t0:.1f} s in all ({t1 - t0:.1f} s listing the data, {t2 - t1:.1f} s reading + training)")
    print(f"per epoch: median {np.median(secs):.2f} s (features {np.median(feat):.2f} s, optimisation {np.median(secs - feat):.2f} s) "
          f"for {int(np.median(segs))} segments")
    print(f"throughput: {segs.sum() / secs.sum():.0f} segments/s end to end (features + optimisation), "
          f"{segs.sum() / (secs - feat).sum():.0f} segments/s optimisation only")
    print(f"final loss {hist[-1].loss:.4f}, importance {hist[-1].importance:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
