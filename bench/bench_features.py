"""Feature extraction speed: edge_asc's numpy features against librosa computing the same 52 features.

One thread (OMP/OPENBLAS/MKL set to 1 before numpy loads), real audio from ambient13. For each 300 ms
segment both implementations get the same slice (left context + segment, what the daemon hands the
extractor) and are timed call by call; median and p99 per segment, and their ratio. A second row times
a whole 10 s scene at once (offline batch), amortised per segment. The reference must agree with ours
(the tolerances below) or the bench fails.

    python bench/bench_features.py [--data ../shared/data/ambient13] [--segments 1500] [--json out.json]

The reference (``reference_features``) is librosa's melspectrogram/MFCC, a causal least-squares slope as
the delta (scipy lfilter), scipy median filters for the harmonic/percussive split, librosa's softmask and
librosa's spectral centroid, bandwidth, flatness and rolloff on the mel-band axis. tests/dsp/test_features.py
imports it to check all 52 features against ours on real audio.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before numpy is imported; importing this module from tests changes nothing
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[_var] = "1"

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edge_asc.dsp.audio_io import read_audio
from edge_asc.training.datasets import load_dataset
from edge_asc.dsp.features import AMIN, ROLLOFF, FeatureConfig, FeatureExtractor

DEFAULT_DATA = next(
    (p for p in (Path(__file__).resolve().parents[2] / "shared" / "data" / "ambient13", Path("/work/shared/data/ambient13")) if p.is_dir()),
    Path("ambient13"),
)
# reference vs ours, max abs difference allowed per feature group (ours is float32)
TOLERANCE = {"mfcc": 1e-4, "delta": 1e-4, "log_energy": 1e-3, "hpss": 1e-4}
TARGET_RATIO = 5.0
TARGET_MS = 0.5


def reference_features(x: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The 52 features of one segment computed with librosa/scipy: x is (input_samples,), returns (20, 52) float64.

    Also works on a whole stream (context zeros + signal) and returns every window then: (n_windows - context, 52).
    Odd harmonic_kernel only (scipy's median of an even window is the upper middle, ours the mean of both).
    """
    import librosa
    import scipy.ndimage
    import scipy.signal

    pad = (cfg.n_fft - cfg.win_length) // 2
    xp = np.pad(np.asarray(x, dtype=np.float64), (pad, cfg.n_fft - cfg.win_length - pad))
    mel = librosa.feature.melspectrogram(
        y=xp, sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
        center=False, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, power=2.0,
    )  # (n_mels, n_windows) fmt: skip
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=None), n_mfcc=cfg.n_mfcc)
    w = cfg.delta_width
    t = np.arange(w) - (w - 1) / 2.0
    delta = scipy.signal.lfilter((t / np.sum(t * t))[::-1], 1.0, mfcc, axis=1)  # slope over the last w windows
    kh, kp = cfg.harmonic_kernel, cfg.percussive_kernel
    harm = scipy.ndimage.median_filter(mel, size=(1, kh), origin=(0, (kh - 1) // 2), mode="constant")  # last kh windows
    perc = scipy.ndimage.median_filter(mel, size=(kp, 1), mode="nearest")  # kp neighbouring bands
    mask = librosa.util.softmask(harm, perc, power=2.0)  # H^2 / (H^2 + P^2)
    tiny = harm**2 + perc**2 < AMIN * AMIN
    mask[tiny] = harm[tiny] ** 2 / (AMIN * AMIN)  # our floor: H^2 / max(H^2 + P^2, AMIN^2)
    bands = np.arange(cfg.n_mels, dtype=np.float64)
    top = cfg.n_mels - 1
    cols = []
    parts = (mel * mask, mel * (1.0 - mask))
    energy = [p.sum(axis=0) for p in parts]
    cols += [10.0 * np.log10(np.maximum(e, AMIN)) for e in energy]
    cols.append(energy[0] / np.maximum(energy[0] + energy[1], AMIN))
    # librosa normalises a spectrum by its sum; ours by max(sum, AMIN), so a part whose energy is below the
    # floor has its weights scaled down by r = E / AMIN (descriptors fade to 0 with the energy)
    scale = [e / np.maximum(e, AMIN) for e in energy]
    centroids = [librosa.feature.spectral_centroid(S=p, freq=bands)[0] for p in parts]
    widths = [librosa.feature.spectral_bandwidth(S=p, freq=bands, centroid=c[None], p=2)[0] for p, c in zip(parts, centroids)]
    cols += [r * c / top for r, c in zip(scale, centroids)]
    cols += [np.sqrt(np.maximum(r * (w**2 + c**2) - (r * c) ** 2, 0.0)) / top for r, w, c in zip(scale, widths, centroids)]
    for p, e in zip(parts, energy):  # librosa's mean is over max(S, AMIN); ours over S, floored at AMIN
        flat = librosa.feature.spectral_flatness(S=p, power=1.0, amin=AMIN)[0]
        cols.append(flat * np.maximum(p, AMIN).mean(axis=0) / np.maximum(e / cfg.n_mels, AMIN))
    for p, e in zip(parts, energy):  # below the floor: first band reaching 0.85 * AMIN, else band 0
        roll = librosa.feature.spectral_rolloff(S=p, freq=bands, roll_percent=ROLLOFF)[0]
        floor_band = np.argmax(np.cumsum(p, axis=0) >= ROLLOFF * AMIN, axis=0)
        cols.append(np.where(e >= AMIN, roll, floor_band) / top)
    logp = np.log(np.maximum(perc, AMIN))
    cols.append(np.concatenate([[0.0], np.maximum(np.diff(logp, axis=1), 0.0).mean(axis=0)]))
    hpss = np.stack(cols, axis=-1)  # (n_windows, 12)
    out = np.concatenate([mfcc.T, delta.T, hpss], axis=1)  # (n_windows, 52)
    return out[cfg.context_frames :]


def max_differences(ours: np.ndarray, ref: np.ndarray, cfg: FeatureConfig) -> dict[str, float]:
    """Max abs difference per feature group (ours and ref are (..., 52))."""
    n = cfg.n_mfcc
    d = np.abs(ours.astype(np.float64) - ref)
    return {
        "mfcc": float(d[..., :n].max()),
        "delta": float(d[..., n : 2 * n].max()),
        "log_energy": float(d[..., 2 * n : 2 * n + 2].max()),
        "hpss": float(d[..., 2 * n + 2 :].max()),
    }


def real_slices(data: Path, cfg: FeatureConfig, n_segments: int) -> list[np.ndarray]:
    """(input_samples,) slices from the first 10 s scene of every ambient13 file, round-robin over files."""
    ds = load_dataset(data, sample_rate=cfg.sample_rate)
    first = {}
    for s in ds.scenes:
        first.setdefault(s.path, s)
    per_file = []
    for path, scene in first.items():
        audio = read_audio(path, cfg.sample_rate)[: int(round(scene.duration_s * cfg.sample_rate))]
        padded = np.concatenate([np.zeros(cfg.context_samples, dtype=np.float32), audio])
        count = len(audio) // cfg.segment_samples
        per_file.append([padded[i * cfg.segment_samples : i * cfg.segment_samples + cfg.input_samples] for i in range(count)])
    slices = []
    for i in range(max(len(p) for p in per_file)):
        slices += [p[i] for p in per_file if i < len(p)]
    return slices[:n_segments]


def time_interleaved(fns, inputs) -> list[np.ndarray]:
    """Seconds per call of each function, alternating between them on every input so that other load on
    the machine hits them alike; one perf_counter pair around each call."""
    times = [np.empty(len(inputs)) for _ in fns]
    for i, x in enumerate(inputs):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn(x)
            t[i] = time.perf_counter() - t0
    return times


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ambient13 folder")
    parser.add_argument("--segments", type=int, default=1500, help="segments timed per implementation")
    parser.add_argument("--batch-scenes", type=int, default=13, help="10 s scenes timed whole (offline row)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)

    cfg = FeatureConfig()
    fx = FeatureExtractor(cfg)
    slices = real_slices(args.data, cfg, args.segments)
    ref = lambda x: reference_features(x, cfg)  # noqa: E731

    # agreement on every timed segment (and warm-up for both)
    ours_all = np.stack([fx.segment_features(x) for x in slices])
    ref_all = np.stack([ref(x) for x in slices])
    diffs = max_differences(ours_all, ref_all, cfg)
    agree = all(diffs[k] <= TOLERANCE[k] for k in TOLERANCE)

    # live: one segment per call, as the daemon does
    t_ours, t_ref = time_interleaved([fx.segment_features, ref], slices)

    # offline: whole 10 s scenes at once, amortised per segment
    scene_audio = _batch_scenes(args.data, cfg, args.batch_scenes)
    n_seg = sum(len(a) // cfg.segment_samples for a in scene_audio)
    context = np.zeros(cfg.context_samples, dtype=np.float32)
    b_ours, b_ref = (
        float(np.sum(t)) / n_seg
        for t in time_interleaved([fx.signal_features, lambda a: ref(np.concatenate([context, a]))], scene_audio)
    )

    ms = lambda v: float(v) * 1e3  # noqa: E731
    result = {
        "segments": len(slices),
        "segment_ms": cfg.segment_seconds * 1e3,
        "threads": 1,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
        "live_ours_median_ms": ms(np.median(t_ours)),
        "live_ours_p99_ms": ms(np.percentile(t_ours, 99)),
        "live_librosa_median_ms": ms(np.median(t_ref)),
        "live_librosa_p99_ms": ms(np.percentile(t_ref, 99)),
        "live_ratio_median": float(np.median(t_ref) / np.median(t_ours)),
        "batch_scenes": len(scene_audio),
        "batch_ours_ms_per_segment": ms(b_ours),
        "batch_librosa_ms_per_segment": ms(b_ref),
        "batch_ratio": float(b_ref / b_ours),
        "max_abs_diff": diffs,
        "tolerance": TOLERANCE,
        "agree": agree,
        "targets": {"ratio": TARGET_RATIO, "ours_median_ms": TARGET_MS},
    }
    result["targets_met"] = bool(result["live_ratio_median"] >= TARGET_RATIO and result["live_ours_median_ms"] < TARGET_MS)

    print(f"features per 300 ms segment, 1 thread, {len(slices)} real ambient13 segments ({result['machine']})")
    print(f"{'':28s}{'ours':>10s}{'librosa':>10s}{'ratio':>8s}")
    print(f"{'live, median (ms/segment)':28s}{result['live_ours_median_ms']:10.3f}{result['live_librosa_median_ms']:10.3f}{result['live_ratio_median']:7.1f}x")
    print(f"{'live, p99 (ms/segment)':28s}{result['live_ours_p99_ms']:10.3f}{result['live_librosa_p99_ms']:10.3f}{result['live_librosa_p99_ms'] / result['live_ours_p99_ms']:7.1f}x")
    print(f"{'batch 10 s scenes (ms/seg)':28s}{result['batch_ours_ms_per_segment']:10.3f}{result['batch_librosa_ms_per_segment']:10.3f}{result['batch_ratio']:7.1f}x")
    print("max |ours - librosa|: " + ", ".join(f"{k} {v:.2e} (tol {TOLERANCE[k]:g})" for k, v in diffs.items()))
    print(f"targets (>= {TARGET_RATIO:g}x librosa, < {TARGET_MS} ms median): {'met' if result['targets_met'] else 'MISSED'}; agreement: {'ok' if agree else 'FAILED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if agree else 1


def _batch_scenes(data: Path, cfg: FeatureConfig, count: int) -> list[np.ndarray]:
    ds = load_dataset(data, sample_rate=cfg.sample_rate)
    seen, out = set(), []
    for s in ds.scenes:
        if s.path in seen or s.duration_s < 10.0:
            continue
        seen.add(s.path)
        out.append(read_audio(s.path, cfg.sample_rate)[: int(round(s.duration_s * cfg.sample_rate))])
        if len(out) == count:
            break
    return out


if __name__ == "__main__":
    sys.exit(main())
