"""Feature extraction into the feature cache: segments per second with 1 and 2 workers, and the cache's size.

On all of ambient13 (10 s scenes), each case into an empty (cold) cache directory: the clean features of
every scene, then one augmentation draw of every scene (the default augmentation, seed 0), each with 1
and with 2 extraction workers (spawned processes; the pool's start-up is included). Then the cache size on
disk per draw and for 30 draws (the default epochs: one draw per epoch) plus the clean features. A warm
read (every entry memory-mapped and checked, as a resumed run does) is timed too.

    python bench/bench_extract.py [--data ../shared/data/ambient13] [--workers 1,2] [--json out.json]
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one thread per process, before numpy is imported
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from edge_asc.training.batches import SceneSource, scene_refs
from edge_asc.training.config import TrainConfig
from edge_asc.training.datasets import load_dataset
from edge_asc.training.feature_cache import FeatureCache

DEFAULT_DATA = next(
    (p for p in (Path(__file__).resolve().parents[2] / "shared" / "data" / "ambient13", Path("/work/shared/data/ambient13")) if p.is_dir()),
    Path("ambient13"),
)
DEFAULT_DRAWS = TrainConfig().epochs


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(data: Path, workers: list[int]) -> dict:
    config = TrainConfig()
    dataset = load_dataset(data, sample_rate=config.features.sample_rate)
    refs = scene_refs(dataset)  # hashes every file once (memoised), outside the timings
    labels, recordings = dataset.scene_labels(), dataset.scene_recordings()
    rows, sizes = [], {}
    for n in workers:
        with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
            cache = FeatureCache.open(Path(tmp))
            source = SceneSource(config, refs, labels, recordings, cache, workers=n)
            clean_s = _timed(source.clean)
            segments = int(source.clean()[1].shape[0])
            clean_bytes = cache.size_bytes()
            draw_s = _timed(lambda: source.prepare(range(1)))
            draw_segments = int(source.epoch(0)[1].shape[0])
            draw_bytes = cache.size_bytes() - clean_bytes
            warm = SceneSource(config, refs, labels, recordings, FeatureCache.open(Path(tmp)), workers=n)
            warm_s = _timed(lambda: (warm.clean(), warm.epoch(0)))
            rows.append({"workers": n, "scenes": len(refs), "clean_segments": segments, "clean_s": clean_s, "clean_seg_per_s": segments / clean_s,
                         "draw_segments": draw_segments, "draw_s": draw_s, "draw_seg_per_s": draw_segments / draw_s,
                         "warm_read_s": warm_s})
            sizes = {"clean_bytes": clean_bytes, "draw_bytes": draw_bytes, "draws": DEFAULT_DRAWS,
                     "total_bytes_for_default_draws": clean_bytes + DEFAULT_DRAWS * draw_bytes}
    return {"data": str(data), "cpu_count": os.cpu_count(), "python": platform.python_version(), "rows": rows, "cache": sizes}


def print_table(result: dict) -> None:
    print(f"feature extraction into the cache, {result['data']} ({result['rows'][0]['scenes']} scenes), {result['cpu_count']} CPUs")
    print(f"{'workers':>7} {'clean seg':>9} {'clean s':>8} {'seg/s':>8} {'draw seg':>9} {'draw s':>8} {'seg/s':>8} {'warm read s':>11}")
    for r in result["rows"]:
        print(f"{r['workers']:>7} {r['clean_segments']:>9} {r['clean_s']:>8.2f} {r['clean_seg_per_s']:>8.0f} {r['draw_segments']:>9} "
              f"{r['draw_s']:>8.2f} {r['draw_seg_per_s']:>8.0f} {r['warm_read_s']:>11.2f}")
    c = result["cache"]
    mib = 1024 * 1024
    print(f"cache on disk: clean {c['clean_bytes'] / mib:.1f} MiB, one draw {c['draw_bytes'] / mib:.1f} MiB, "
          f"clean + {c['draws']} draws {c['total_bytes_for_default_draws'] / mib:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default: 1,2)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = bench(args.data, [int(w) for w in args.workers.split(",")])
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if len({r["clean_segments"] for r in result["rows"]}) != 1:
        raise SystemExit("the worker counts gave different segment counts")


if __name__ == "__main__":
    main()
