"""The streaming resampler: accuracy on sines, aliasing, block invariance."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asc.dsp.resample import StreamResampler, resample



def sine(freq: float, rate: int, n: int, phase: float = 0.3) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(n) / rate + phase)


def error_db(y: np.ndarray, ref: np.ndarray) -> float:
    """RMS error relative to a unit sine, in dB, away from the stream's edges."""
    mid = slice(len(y) // 4, 3 * len(y) // 4)
    return 20 * np.log10(np.sqrt(np.mean((y[mid] - ref[mid]) ** 2)) / np.sqrt(0.5))


# --- resampler -------------------------------------------------------------------------------------

RATE_PAIRS = [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100), (16000, 8000)]


@pytest.mark.parametrize("rates", RATE_PAIRS, ids=[f"{a}-{b}" for a, b in RATE_PAIRS])
def test_sines_in_the_passband_come_out_exact(rates):
    """Output sample m sits at input time m * in/out with no delay: compare with the analytic sine there."""
    fin, fout = rates
    for freq in (100.0, 0.1 * min(fin, fout), 0.3 * min(fin, fout)):
        x = sine(freq, fin, fin).astype(np.float32)  # one second
        y = resample(x, fin, fout)
        assert y.dtype == np.float32
        assert len(y) == round(len(x) * fout / fin)
        assert error_db(y, sine(freq, fout, len(y))) < -80.0, (fin, fout, freq)


def test_tones_above_the_new_nyquist_are_removed():
    """44.1 kHz -> 16 kHz: tones above 8 kHz would alias. soxr's HQ filter has its stopband from the new
    Nyquist on (bench/bench_resample.py measures more than 125 dB of attenuation there)."""
    for freq in (8000.0, 8500.0, 10000.0, 12000.0, 20000.0):
        y = resample(sine(freq, 44100, 44100).astype(np.float32), 44100, 16000)
        level = 20 * np.log10(np.sqrt(np.mean(y[4000:12000] ** 2)) / np.sqrt(0.5))
        assert level < -100.0, (freq, level)


@pytest.mark.parametrize("rates", [(44100, 16000), (16000, 44100), (48000, 16000), (16000, 16000), (22050, 16000), (96000, 16000), (11025, 16000)])
def test_the_resampler_gives_the_same_output_for_any_block_size(rates):
    """Bit for bit (soxr's stream keeps its own history): what makes live == offline."""
    fin, fout = rates
    rng = np.random.default_rng(7)
    x = rng.standard_normal(fin // 2).astype(np.float32)
    offline = resample(x, fin, fout)
    for sizes in ([1] * 3000 + [len(x)], list(rng.integers(1, 2000, 400)), [len(x)], [4800] * 100):
        r = StreamResampler(fin, fout)
        out, pos = [], 0
        for size in sizes:
            if pos >= len(x):
                break
            out.append(r.process(x[pos : pos + size]))
            pos += size
        assert pos >= len(x)
        out.append(r.flush())
        np.testing.assert_array_equal(np.concatenate(out), offline)


def test_identity_is_a_copy():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(x, y)
    assert y is not x and not np.shares_memory(x, y)
    r = StreamResampler(16000, 16000)
    np.testing.assert_array_equal(r.process(x[:10]), x[:10])
    assert r.flush().size == 0


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 16000)
