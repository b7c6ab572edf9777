"""Generated class-distinct audio and a tiny training recipe, shared by the training tests (numpy only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from edge_asc.dsp.features import FeatureConfig, FeatureExtractor
from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig

SR = 16000
CLASSES = ("chirps", "noise", "tones")


def generated_recording(kind: str, seconds: float, seed: int) -> np.ndarray:
    """One 'recording' of a class. Each recording has its own source parameters and its own nuisances:
    a randomly coloured noise bed at -5..5 dB SNR and a level within 20 dB, so that an untrained encoder
    separates the classes only weakly and training has something to learn."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    if kind == "tones":  # a few steady partials
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in rng.uniform(200, 2500, 3))
    elif kind == "noise":  # coloured broadband noise
        x = np.convolve(rng.standard_normal(n), rng.uniform(0.2, 1.0, 5), mode="same")
    else:  # repeated upward sweeps
        period = rng.uniform(0.08, 0.15)
        f0, f1 = rng.uniform(300, 800), rng.uniform(2000, 5000)
        x = np.sin(2 * np.pi * (f0 + (f1 - f0) * (t % period) / period / 2) * (t % period))
    taps = rng.standard_normal(24) * np.exp(-np.arange(24) / rng.uniform(1, 8))  # the bed's colour
    bed = np.convolve(rng.standard_normal(n + 64), taps, mode="valid")[:n]
    bed *= np.std(x) / np.std(bed) * 10 ** (-rng.uniform(-5, 5) / 20)
    x = x + bed
    x = x / np.std(x) * 0.1 * 10 ** (-rng.uniform(0, 20) / 20)
    return x.astype(np.float32)


def generated_scenes(recordings_per_class: int, seconds: float, seed: int):
    audio, labels, recs = [], [], []
    for c, kind in enumerate(CLASSES):
        for r in range(recordings_per_class):
            audio.append(generated_recording(kind, seconds, seed + 100 * c + r))
            labels.append(c)
            recs.append(c * recordings_per_class + r)
    return audio, np.array(labels), np.array(recs)


def tiny_config(**changes) -> TrainConfig:
    base = dict(
        epochs=6,
        batch_size=24,
        classes_per_batch=3,
        model=ModelConfig(hidden_size=16),
        augment=AugmentConfig(gain_db=3.0, eq_tilt_db=3.0, eq_band_db=3.0, mix_prob=0.3),
    )
    base.update(changes)
    return TrainConfig(**base)


def features_of(audio, labels):
    fx = FeatureExtractor(FeatureConfig())
    feats = [fx.signal_features(x) for x in audio]
    return np.concatenate(feats), np.concatenate([np.full(f.shape[0], y) for f, y in zip(feats, labels)])


def write_dataset(root: Path) -> Path:
    """A folder-layout dataset of generated recordings, with metadata.csv carrying recording ids."""
    rows = ["path,label,recording_id"]
    for c, kind in enumerate(CLASSES):
        for r in range(2):
            rel = f"{kind}/{kind}{r}.wav"
            (root / kind).mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, generated_recording(kind, 1.5, 10 * c + r), SR)
            rows.append(f"{rel},{kind},rec-{kind}-{r}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root
