"""The resampler (edge_asc.dsp.resample) at the device rates a microphone runs at: cost, quality, streaming.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 python bench/bench_resample.py [--seconds 20]

For 22.05, 44.1 and 48 kHz -> 16 kHz (the model's rate) it prints:
- cost: CPU microseconds per 512-frame block, streamed (StreamResampler.process), the best of 5 passes over
  ``--seconds`` of noise, and the share of one core that is at the device's block rate;
- quality: passband ripple (peak-to-peak gain in dB over sines from 50 Hz to PASSBAND_HZ) and the gain at
  7.5 kHz, and stopband attenuation: the loudest alias a full-scale sine at or above 8 kHz (the new
  Nyquist), 8.5 kHz and 9 kHz leaves, as dB below the sine (sines on a 25 Hz grid up to the input Nyquist);
- streaming: whether the output is bit-identical for block sizes of 1, 512, 4800, random sizes from 1 to
  2000 and the whole signal at once (live == offline: audio_io.read_audio resamples a file in one block).
Run it on a commit to compare resamplers (git checkout, then this script).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from edge_asc.dsp.resample import StreamResampler, resample

OUT_RATE = 16000
IN_RATES = (22050, 44100, 48000)
BLOCK = 512
PASSBAND_HZ = 7000.0


def block_cost_us(in_rate: int, seconds: float) -> float:
    x = (np.random.default_rng(0).standard_normal(int(in_rate * seconds)) * 0.1).astype(np.float32)
    blocks = [x[i : i + BLOCK] for i in range(0, len(x) - BLOCK + 1, BLOCK)]
    passes = []
    for _ in range(5):
        r = StreamResampler(in_rate, OUT_RATE)
        t = time.thread_time()  # CPU time: a shared machine's waits for a core are not the resampler's cost
        for b in blocks:
            r.process(b)
        passes.append((time.thread_time() - t) / len(blocks) * 1e6)
    return min(passes)  # the least disturbed pass: other processes share this machine


def gain_db(in_rate: int, freq: float, out_freq: float | None = None) -> float:
    """Output level at ``out_freq`` (default ``freq``; an alias lands elsewhere) of a unit sine at ``freq``, in dB."""
    n = in_rate  # one second
    x = np.sin(2 * np.pi * freq * np.arange(n) / in_rate + 0.3).astype(np.float32)
    y = resample(x, in_rate, OUT_RATE).astype(np.float64)[OUT_RATE // 4 : 3 * OUT_RATE // 4]  # away from the edges
    f = freq if out_freq is None else out_freq
    t = np.arange(OUT_RATE // 4, 3 * OUT_RATE // 4) / OUT_RATE
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return 20 * np.log10(max(float(np.hypot(*coef)), 1e-12))


def stopband_db(in_rate: int, from_hz: float) -> float:
    """The loudest output (RMS of the whole output, as dB of a unit sine's RMS) of sines from ``from_hz`` to
    the input Nyquist: everything there is an alias (or leakage)."""
    worst = -400.0
    for freq in np.arange(from_hz, in_rate / 2, 25.0):
        x = np.sin(2 * np.pi * freq * np.arange(in_rate) / in_rate + 0.3).astype(np.float32)
        y = resample(x, in_rate, OUT_RATE).astype(np.float64)[OUT_RATE // 4 : 3 * OUT_RATE // 4]
        worst = max(worst, 20 * np.log10(max(np.sqrt(np.mean(y**2)) / np.sqrt(0.5), 1e-20)))
    return worst


def invariant(in_rate: int) -> bool:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(in_rate).astype(np.float32) * 0.3
    offline = resample(x, in_rate, OUT_RATE)
    for sizes in ([1] * len(x), [BLOCK] * len(x), [4800] * len(x), list(rng.integers(1, 2000, len(x)))):
        r = StreamResampler(in_rate, OUT_RATE)
        out, pos = [], 0
        for size in sizes:
            if pos >= len(x):
                break
            out.append(r.process(x[pos : pos + size]))
            pos += size
        out.append(r.flush())
        y = np.concatenate(out)
        if y.shape != offline.shape or not np.array_equal(y, offline):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="audio streamed per cost pass")
    ap.add_argument("--no-quality", action="store_true", help="cost and streaming only (the stopband sweep takes a while)")
    args = ap.parse_args()
    print(f"resampler: {StreamResampler.__module__}.{StreamResampler.__qualname__} ({(StreamResampler.__doc__ or '').splitlines()[0]})")
    print(f"{'in rate':>8} {'us/block':>9} {'% core':>7} {'ripple dB':>10} {'@7.5k dB':>9} {'>=8k dB':>8} {'>=8.5k dB':>10} {'>=9k dB':>8} {'block-invariant':>16}")
    for rate in IN_RATES:
        us = block_cost_us(rate, args.seconds)
        share = us * 1e-6 * rate / BLOCK * 100
        if args.no_quality:
            q = ("-",) * 5
        else:
            gains = [gain_db(rate, f) for f in np.arange(50.0, PASSBAND_HZ + 1, 50.0)]
            q = (f"{max(gains) - min(gains):.4f}", f"{gain_db(rate, 7500.0):.2f}",
                 *(f"{stopband_db(rate, f):.1f}" for f in (8000.0, 8500.0, 9000.0)))
        print(f"{rate:>8} {us:>9.1f} {share:>7.3f} {q[0]:>10} {q[1]:>9} {q[2]:>8} {q[3]:>10} {q[4]:>8} {str(invariant(rate)):>16}")


if __name__ == "__main__":
    main()
