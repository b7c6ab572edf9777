"""Synthetic scenes for the tests: three clearly different sounds, numpy only, deterministic from a seed.

The committed tiny model (tests/fixtures/tiny/, made by scripts/make-test-fixture.py) was trained on
these scenes, and the runtime tests classify fresh clips of them, so no test needs recorded audio or torch.
The labels keep the names of the ambient13 classes the fixture once used, and each sound imitates its name:

* ``rain``: bright hiss (high-passed white noise) with dense droplet clicks;
* ``forest_birds``: a faint low background with fast high chirps (2-6 kHz sweeps) several times a second;
* ``street_traffic``: low rumble (brown noise) with an engine hum at 40-90 Hz that swells as cars pass.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
LABELS = ("rain", "forest_birds", "street_traffic")
TRAIN_SEEDS = (1, 2)  # the recordings per label the fixture was trained and indexed on
TRAIN_SECONDS = 12.0
CLIP_SEED = 1000  # test clips: another seed, never heard in training
CLIP_SECONDS = 6.0
LEVEL = 0.1  # RMS of every scene


def _coloured(rng: np.random.Generator, n: int, rate: int, corner_hz: float, slope: float) -> np.ndarray:
    """White noise shaped in the frequency domain: flat below ``corner_hz``, ``slope`` dB/octave above."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    gain = np.maximum(f, corner_hz) / corner_hz
    return np.fft.irfft(spectrum * gain ** (slope / 6.02), n)


def _rain(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    hiss = np.diff(rng.standard_normal(n + 1))  # first difference: rising spectrum
    drops = np.zeros(n)
    at = rng.integers(0, n, size=int(n / rate * rng.uniform(150, 250)))
    drops[at] = rng.uniform(-1.0, 1.0, at.shape[0]) * 6.0
    ring = np.exp(-np.arange(48) / 6.0) * np.sin(2 * np.pi * rng.uniform(3000, 5000) * np.arange(48) / rate)
    return hiss + np.convolve(drops, ring, mode="same")


def _birds(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    x = 0.02 * _coloured(rng, n, rate, 200.0, -12.0)
    t_end = n / rate
    t = 0.0
    while t < t_end:
        dur = rng.uniform(0.05, 0.15)
        m = int(dur * rate)
        start = int(t * rate)
        tt = np.arange(m) / rate
        f0, f1 = rng.uniform(2000, 4000), rng.uniform(3500, 6000)
        phase = 2 * np.pi * (f0 * tt + (f1 - f0) * tt**2 / (2 * dur))
        chirp = np.sin(phase) * np.hanning(m) * rng.uniform(0.5, 1.0)
        stop = min(n, start + m)
        x[start:stop] += chirp[: stop - start]
        t += rng.uniform(0.08, 0.2)
    return x


def _traffic(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    rumble = _coloured(rng, n, rate, 100.0, -12.0)
    rumble /= np.std(rumble)
    f = rng.uniform(40, 90) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t))
    phase = 2 * np.pi * np.cumsum(f) / rate
    hum = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.25) * t + rng.uniform(0, 6.3))
    return (rumble + hum) * swell


SYNTHS = {"rain": _rain, "forest_birds": _birds, "street_traffic": _traffic}


def scene(label: str, seconds: float, seed: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``seconds`` of mono float32 audio of scene ``label`` at ``rate``, RMS ``LEVEL``; the same for the same seed."""
    if label not in SYNTHS:
        raise ValueError(f"unknown synthetic scene {label!r}; known: {', '.join(LABELS)}")
    rng = np.random.default_rng([seed, LABELS.index(label)])
    x = SYNTHS[label](rng, int(seconds * rate), rate)
    return (x / np.std(x) * LEVEL).astype(np.float32)


def training_scenes() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """What the fixture model was trained and indexed on: audio, label ids, recording ids."""
    audio, labels, recordings = [], [], []
    for c, label in enumerate(LABELS):
        for seed in TRAIN_SEEDS:
            audio.append(scene(label, TRAIN_SECONDS, seed))
            labels.append(c)
            recordings.append(len(recordings))
    return audio, np.array(labels, dtype=np.int64), np.array(recordings, dtype=np.int64)


def clip(label: str) -> np.ndarray:
    """The test clip of ``label``: ``CLIP_SECONDS`` of a recording not used in training."""
    return scene(label, CLIP_SECONDS, CLIP_SEED)
