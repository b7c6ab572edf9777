"""Waveform augmentations for training (never at run time): new "recordings" from the ones we have.

A model trained on a few recordings per class learns those recordings (their level, their microphone's
colour, their exact mixture of sources) rather than the kind of place. Each epoch every training scene
is redrawn with:

* a random gain (level),
* a random equalisation: a smooth random curve on a log-frequency axis, a spectral tilt plus a few
  peaks and dips (microphone, room, distance),
* mixing with another scene of the same class, preferably from another recording, at a random SNR
  (another mixture of the same kind of sources),
* a random time shift of the 300 ms segment grid (other segment boundaries).

Everything is drawn from the ``numpy.random.Generator`` passed in; ``AUGMENT_VERSION`` names what a draw
computes (bump it when that changes: cached draws are then recomputed). Training draws are counter-based
(training/streams.py): draw d of a scene uses ``stream_rng(seed, AUGMENT_STREAM, d, scene_key)`` and the
mixing partners of draw d ``stream_rng(seed, PARTNER_STREAM, d)`` over the training scenes, so any draw of
any scene can be computed alone, in any process, in any order, and cached (training/extract.py).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edge_asc.training.config import AugmentConfig
from edge_asc.training.streams import AUGMENT_STREAM, PARTNER_STREAM, stream_rng

AUGMENT_VERSION = 2  # bump when what a draw computes changes (part of the feature cache's draw keys); 2: partners drawn per scene
EQ_FMIN_HZ = 50.0  # lowest centre of a random EQ band
EQ_REF_HZ = 1000.0  # the tilt pivots here
EQ_TILT_OCTAVES = 4.0  # eq_tilt_db is the change over this many octaves
EQ_WIDTH_OCTAVES = (0.3, 1.5)  # standard deviation of a band's Gaussian bump
EPS = 1e-12


def db_to_amplitude(db: np.ndarray | float) -> np.ndarray | float:
    return 10.0 ** (np.asarray(db) / 20.0)


def random_gain(x: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """x times a gain drawn uniformly in [-max_db, +max_db] dB."""
    return x * np.float32(db_to_amplitude(rng.uniform(-max_db, max_db)))


def eq_curve_db(freqs: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, sample_rate: int) -> np.ndarray:
    """A smooth random gain curve in dB at ``freqs`` (Hz): tilt plus Gaussian bumps in log-frequency."""
    octave = np.log2(np.maximum(freqs, EQ_FMIN_HZ / 2) / EQ_REF_HZ)  # (n_bins,)
    curve = rng.uniform(-cfg.eq_tilt_db, cfg.eq_tilt_db) * octave / EQ_TILT_OCTAVES  # (n_bins,)
    lo, hi = np.log2(EQ_FMIN_HZ / EQ_REF_HZ), np.log2(sample_rate / 2 / EQ_REF_HZ)
    centres = rng.uniform(lo, hi, cfg.eq_bands)  # (n_bands,)
    widths = rng.uniform(*EQ_WIDTH_OCTAVES, cfg.eq_bands)  # (n_bands,)
    gains = rng.uniform(-cfg.eq_band_db, cfg.eq_band_db, cfg.eq_bands)  # (n_bands,)
    bumps = gains[:, None] * np.exp(-0.5 * ((octave[None, :] - centres[:, None]) / widths[:, None]) ** 2)
    return curve + bumps.sum(axis=0)  # (n_bins,)


def random_eq(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, sample_rate: int) -> np.ndarray:
    """x filtered by a random smooth curve (zero phase, applied on the whole signal's spectrum)."""
    spec = np.fft.rfft(x)  # (n_bins,)
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / sample_rate)  # (n_bins,)
    spec *= db_to_amplitude(eq_curve_db(freqs, rng, cfg, sample_rate))
    return np.fft.irfft(spec, n=x.shape[0]).astype(np.float32)


def mix_at_snr(x: np.ndarray, other: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float]) -> np.ndarray:
    """x plus a random stretch of ``other`` (looped to x's length) at an SNR drawn in ``snr_db``."""
    n = x.shape[0]
    start = int(rng.integers(other.shape[0]))
    idx = (start + np.arange(n)) % other.shape[0]  # (n,) loop when other is shorter
    y = other[idx]
    px, py = float(np.mean(x * x)), float(np.mean(y * y))
    if px < EPS or py < EPS:
        return x
    snr = rng.uniform(*snr_db)
    return (x + y * np.float32(np.sqrt(px / (py * 10.0 ** (snr / 10.0))))).astype(np.float32)


def random_shift(x: np.ndarray, rng: np.random.Generator, max_samples: int) -> np.ndarray:
    """Drop a random number of leading samples in [0, max_samples): moves the segment grid."""
    return x[int(rng.integers(max_samples)) :] if max_samples > 1 else x


class Augmenter:
    """Draws an augmented copy of every training scene, one epoch at a time."""

    def __init__(self, config: AugmentConfig, sample_rate: int, segment_samples: int) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples

    def partners(self, labels: np.ndarray, recordings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each scene a random other scene of its class, from another recording when the class has another
        (-1: the class has a single scene). Memory and time O(scenes): one integer draw per scene."""
        partner = np.full(labels.shape[0], -1, dtype=np.int64)
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)  # (m,) the class's scenes
            m = idx.shape[0]
            if m < 2:
                continue
            order = np.argsort(recordings[idx], kind="stable")  # the class's scenes grouped by recording
            members, rec = idx[order], recordings[idx][order]  # (m,), (m,)
            first = np.searchsorted(rec, rec, side="left")  # (m,) where each scene's recording starts in members
            last = np.searchsorted(rec, rec, side="right")  # (m,) and where it ends
            if first[0] == 0 and last[0] == m:  # one recording: any other scene of the class
                first, last = np.arange(m), np.arange(m) + 1
            u = rng.integers(m - (last - first))  # (m,) a position among the members outside [first, last)
            partner[members] = members[np.where(u < first, u, u + (last - first))]
        return partner

    def scene(self, x: np.ndarray, other: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """One augmented scene. The order is fixed, so a seed gives the same result."""
        cfg = self.config
        if other is not None and rng.random() < cfg.mix_prob:
            x = mix_at_snr(x, other, rng, cfg.mix_snr_db)
        if cfg.eq_tilt_db > 0 or (cfg.eq_bands > 0 and cfg.eq_band_db > 0):
            x = random_eq(x, rng, cfg, self.sample_rate)
        if cfg.gain_db > 0:
            x = random_gain(x, rng, cfg.gain_db)
        if cfg.time_shift:
            x = random_shift(x, rng, self.segment_samples)
        return x

    def draw_partners(self, labels: np.ndarray, recordings: np.ndarray, seed: int, draw: int) -> np.ndarray:
        """The mixing partners of draw ``draw`` over these scenes (-1: none; all -1 when mixing is off)."""
        if not self.config.enabled or self.config.mix_prob <= 0:
            return np.full(np.asarray(labels).shape[0], -1, dtype=np.int64)
        return self.partners(np.asarray(labels), np.asarray(recordings), stream_rng(seed, PARTNER_STREAM, draw))

    def draw(
        self, audio: Sequence[np.ndarray], labels: np.ndarray, recordings: np.ndarray, seed: int, draw: int, scene_keys: Sequence[int]
    ) -> list[np.ndarray]:
        """Draw ``draw`` of every scene in memory (the inputs are not modified); ``scene_keys``: each scene's
        stable integer (SceneRef.seed_key). Scene i is what an extraction worker computes for it alone."""
        if not self.config.enabled:
            return list(audio)
        partner = self.draw_partners(labels, recordings, seed, draw)
        return [
            self.scene(x, audio[j] if j >= 0 else None, stream_rng(seed, AUGMENT_STREAM, draw, key))
            for x, j, key in zip(audio, partner, scene_keys)
        ]
