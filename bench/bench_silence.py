"""Benchmark: segment levels of real quiet recordings against silence, to choose decision.silence_dbfs.

    OMP_NUM_THREADS=1 python bench/bench_silence.py --json bench/results/bench_silence.json

Every ambient13 recording is read as the pipeline hears it (edge_asc.dsp.audio_io.iter_audio, mono at the
model's rate) and cut into 300 ms segments; each segment's level is edge_asc.runtime.pipeline.segment_dbfs,
the one the silence gate uses. Printed per recording: the 0.1st percentile and the minimum segment level,
quietest first; then the same for generated inputs: digital silence and white noise at dither-like levels.
A gate must lie well below the quietest real segment and above the dither-level noise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_asc.dsp.audio_io import iter_audio  # noqa: E402
from edge_asc.dsp.features import FeatureConfig  # noqa: E402
from edge_asc.runtime.pipeline import SILENCE_DBFS, segment_dbfs  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ambient13"
AUDIO = (".flac", ".wav", ".ogg")
GENERATED_S = 10.0  # seconds of each generated input
NOISE_DBFS = (-120.0, -100.0, -90.0, -80.0)  # white noise at these RMS levels (16-bit dither is about -101 dBFS)


def segment_levels(samples: np.ndarray, seg: int) -> np.ndarray:
    """(n,) samples -> (n // seg,) dBFS of each whole segment."""
    n = samples.size // seg
    return np.array([segment_dbfs(samples[i * seg:(i + 1) * seg]) for i in range(n)], dtype=np.float64)


def recording_levels(path: Path, rate: int, seg: int) -> np.ndarray:
    return segment_levels(np.concatenate(list(iter_audio(path, rate))), seg)


def summary(name: str, levels: np.ndarray) -> dict:
    finite = levels[np.isfinite(levels)]
    with np.errstate(invalid="ignore"):  # the percentile of -inf levels (digital silence) is -inf
        p01 = float(np.percentile(levels, 0.1)) if levels.size else math.nan
    def r(v: float) -> float | None:
        return None if not math.isfinite(v) else round(float(v), 1)
    return {
        "input": name, "segments": int(levels.size),
        "p0.1_dbfs": r(p01) if levels.size and not math.isnan(p01) else None,
        "min_dbfs": r(float(levels.min())) if levels.size else None,
        "median_dbfs": r(float(np.median(finite))) if finite.size else None,
        "digital_silence_segments": int(np.count_nonzero(~np.isfinite(levels))),
    }


def generated(rate: int, seg: int) -> list[dict]:
    rng = np.random.default_rng(0)
    n = int(GENERATED_S * rate)
    out = [summary("digital silence", segment_levels(np.zeros(n, dtype=np.float32), seg))]
    for db in NOISE_DBFS:
        x = (10 ** (db / 20) * rng.standard_normal(n)).astype(np.float32)
        out.append(summary(f"white noise {db:.0f} dBFS", segment_levels(x, seg)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args()
    fc = FeatureConfig()
    rate, seg = fc.sample_rate, fc.segment_samples
    files = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in AUDIO)
    real = [summary(str(p.relative_to(args.data)), recording_levels(p, rate, seg)) for p in files]
    real.sort(key=lambda d: d["min_dbfs"] if d["min_dbfs"] is not None else -math.inf)
    gen = generated(rate, seg)
    quietest = min((d["min_dbfs"] for d in real if d["min_dbfs"] is not None), default=None)
    print(f"{'input':58s} {'segments':>8s} {'p0.1':>7s} {'min':>7s} {'median':>7s} {'digital0':>8s}")
    for d in real + gen:
        cells = [f"{d[k]:7.1f}" if d[k] is not None else f"{'-inf':>7s}" for k in ("p0.1_dbfs", "min_dbfs", "median_dbfs")]
        print(f"{d['input'][:58]:58s} {d['segments']:8d} {' '.join(cells)} {d['digital_silence_segments']:8d}")
    print(f"\nquietest real segment: {quietest} dBFS over {len(real)} recordings; gate (SILENCE_DBFS): {SILENCE_DBFS} dBFS")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"sample_rate": rate, "segment_samples": seg, "silence_dbfs": SILENCE_DBFS,
                                         "quietest_real_dbfs": quietest, "recordings": real, "generated": gen}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
