"""The 52 per-window features of the paper (section 3.1), in numpy, causal, shared by trainer and daemon.

Per FFT window (25 ms, 15 ms hop):

* 20 MFCCs: Hann window, |rFFT|^2, Slaney mel filterbank (librosa's default), 10*log10 (amin 1e-10,
  no top_db clipping), orthonormal DCT-II. Agrees with ``librosa.feature.mfcc`` fed the same frames.
* 20 first derivatives: the least-squares slope of each MFCC over the last ``delta_width`` windows
  (a causal regression, so no future window is needed).
* 12 harmonic/percussive descriptors of a causal median-filter split of the mel power spectrum
  (docs/features.md defines each one).

A segment is ``frames_per_segment`` windows (20 x 15 ms = 300 ms). Window ``j`` of a stream covers the
``win_length`` samples that end at sample ``(j + 1) * hop_length``, so segment ``i`` owns samples
``[i * segment_samples, (i + 1) * segment_samples)`` and its features also read a fixed left context of
``context_samples`` before that (zeros before the start of a stream). ``segment_features`` is a pure
function of those ``context_samples + segment_samples`` samples; the offline pass and the live daemon
both call it on the same slice, so they produce identical numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from edge_asc.dsp.filters import dct_matrix, hann_window, mel_filterbank
from edge_asc.dsp.median import median_of, median_plan, window_view

# --- DSP constants (defined once; everything else is derived) -------------------------------------
SAMPLE_RATE = 16000
WINDOW_MS = 25.0
HOP_MS = 15.0  # 25 ms windows with 10 ms overlap
N_FFT = 512
N_MELS = 40
N_MFCC = 20
FRAMES_PER_SEGMENT = 20  # 20 x 15 ms = 300 ms
DELTA_WIDTH = 5  # windows in the causal delta regression
HARMONIC_KERNEL = 9  # windows in the causal median over time (harmonic part)
PERCUSSIVE_KERNEL = 7  # mel bands in the median over frequency (percussive part)
ROLLOFF = 0.85
AMIN = 1e-10
N_HPSS = 12

FEATURE_VERSION = 1  # bump when the definition of any feature changes

HPSS_NAMES = (
    "h_log_energy",
    "p_log_energy",
    "harmonic_ratio",
    "h_centroid",
    "p_centroid",
    "h_spread",
    "p_spread",
    "h_flatness",
    "p_flatness",
    "h_rolloff",
    "p_rolloff",
    "p_flux",
)


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings. They travel inside the ONNX model and the index manifest."""

    sample_rate: int = SAMPLE_RATE
    window_ms: float = WINDOW_MS
    hop_ms: float = HOP_MS
    n_fft: int = N_FFT
    n_mels: int = N_MELS
    n_mfcc: int = N_MFCC
    fmin: float = 0.0
    fmax: float | None = None
    frames_per_segment: int = FRAMES_PER_SEGMENT
    delta_width: int = DELTA_WIDTH
    harmonic_kernel: int = HARMONIC_KERNEL
    percussive_kernel: int = PERCUSSIVE_KERNEL
    version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if not 0 < self.hop_length <= self.win_length <= self.n_fft:
            raise ValueError(
                f"need 0 < hop ({self.hop_length}) <= window ({self.win_length}) <= n_fft ({self.n_fft}) samples"
            )
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        if self.delta_width < 2:
            raise ValueError(f"delta_width must be at least 2, got {self.delta_width}")
        if self.harmonic_kernel < 1 or self.percussive_kernel < 1 or self.percussive_kernel % 2 == 0:
            raise ValueError("harmonic_kernel must be >= 1 and percussive_kernel odd and >= 1")
        if self.frames_per_segment < 1:
            raise ValueError("frames_per_segment must be >= 1")

    # --- derived values ---
    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000.0))

    @property
    def n_features(self) -> int:
        return 2 * self.n_mfcc + N_HPSS

    @property
    def segment_samples(self) -> int:
        return self.frames_per_segment * self.hop_length

    @property
    def segment_seconds(self) -> float:
        return self.segment_samples / self.sample_rate

    @property
    def context_frames(self) -> int:
        """Windows before a segment that its features read (deltas, harmonic median, flux)."""
        return max(self.delta_width - 1, self.harmonic_kernel - 1, 1)

    @property
    def context_samples(self) -> int:
        """Samples before a segment that its features read: earlier windows plus the window overlap."""
        return self.context_frames * self.hop_length + (self.win_length - self.hop_length)

    @property
    def input_samples(self) -> int:
        """Length of the slice ``segment_features`` takes."""
        return self.context_samples + self.segment_samples

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureConfig":
        from edge_asc.config import from_dict

        return from_dict(cls, data, prefix="features.")


# --- the extractor -----------------------------------------------------------------------------


class FeatureExtractor:
    """Computes the (frames_per_segment, 52) feature matrix of one segment, or of every segment of a signal.

    Constants (window, filterbank, DCT, delta weights) are computed once at construction; per call the work is
    one rFFT over the segment's windows and a handful of vectorised numpy operations.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = cfg = config or FeatureConfig()
        self.n_frames = cfg.context_frames + cfg.frames_per_segment  # windows computed per call
        self.window = hann_window(cfg.win_length, cfg.n_fft)
        # mel filterbank restricted to the FFT bins it touches
        mel = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        self.mel_t = np.ascontiguousarray(mel.T)  # (n_bins, n_mels)
        self.dct = dct_matrix(cfg.n_mels, cfg.n_mfcc)  # (n_mels, n_mfcc)
        w = cfg.delta_width
        t = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
        self.delta_weights = t / np.sum(t * t)  # least-squares slope over the last w windows
        self.band_index = np.arange(cfg.n_mels, dtype=np.float64)
        self.band_index_sq = self.band_index**2
        # frame j of the call covers samples [j*hop, j*hop + n_fft) of the zero-padded input slice; only its
        # win_length middle is non-zero after windowing: samples [j*hop, j*hop + win_length) of the input
        self._frame_starts = np.arange(self.n_frames) * cfg.hop_length
        self._pad = cfg.n_fft - cfg.win_length
        self._win_lo = self._pad // 2
        self._win_hi = self._win_lo + cfg.win_length
        self._window_mid = np.ascontiguousarray(self.window[self._win_lo : self._win_hi])
        # median filters: the harmonic one reads windows [first + c, first + c + n) for c < kh; the percussive
        # one reads bands [c, c + n_mels) of the edge-padded band axis for c < kp
        n, kh, kp = cfg.frames_per_segment, cfg.harmonic_kernel, cfg.percussive_kernel
        self._harm_first = self.n_frames - n - kh + 1
        self._harm_plan = median_plan(kh)
        self._perc_bands = np.clip(np.arange(-(kp // 2), cfg.n_mels + kp // 2), 0, cfg.n_mels - 1)
        self._perc_plan = median_plan(kp)
        self._frame_buf = np.zeros((0, cfg.n_fft))  # _frames' windows, zero outside each window's middle

    @property
    def n_features(self) -> int:
        return self.config.n_features

    # one small function per step, over a leading axis of segments --------------------------------
    def _frames(self, x: np.ndarray, count: int) -> np.ndarray:
        """(n_windows, n_fft) windows of a 1-D slice holding ``count`` consecutive segments and the first one's
        left context, zero-padded around each win_length window (window j starts at sample j * hop)."""
        cfg = self.config
        n = self.n_frames + (count - 1) * cfg.frames_per_segment
        if self._frame_buf.shape[0] < n:  # kept between calls: only the windows' middles are ever written
            self._frame_buf = np.zeros((n, cfg.n_fft))
        frames = self._frame_buf[:n]
        # (n, win_length) strided view of x: row j is x[j*hop : j*hop + win_length]
        view = np.ndarray((n, cfg.win_length), np.float64, x, 0, (cfg.hop_length * x.itemsize, x.itemsize))
        np.multiply(view, self._window_mid, out=frames[:, self._win_lo : self._win_hi])
        return frames

    def _mel_power(self, frames: np.ndarray, count: int) -> np.ndarray:
        """(count, n_frames, n_mels): each segment's windows, the ones segments share transformed once."""
        spec = np.fft.rfft(frames, n=self.config.n_fft, axis=-1)
        parts = spec.view(np.float64).reshape(spec.shape[0], spec.shape[1], 2)  # (real, imag) pairs, in place
        np.multiply(parts, parts, out=parts)
        power = parts[..., 0] + parts[..., 1]  # (n_windows, n_bins) real^2 + imag^2, one FFT per row
        s0, s1 = power.strides  # segment i's windows: rows [i * frames_per_segment, ... + n_frames), a view
        rows = np.ndarray((count, self.n_frames, power.shape[1]), power.dtype, power, 0, (self.config.frames_per_segment * s0, s0, s1))
        return rows @ self.mel_t  # (count, n_frames, n_mels): one matrix product per segment, as for 1

    def _mfcc(self, mel_power: np.ndarray) -> np.ndarray:
        log_mel = 10.0 * np.log10(np.maximum(mel_power, AMIN))
        return log_mel @ self.dct  # (B, n_frames, n_mfcc)

    def _deltas(self, mfcc: np.ndarray) -> np.ndarray:
        """Causal slope over the last delta_width windows, for the segment's windows only."""
        w, n = self.config.delta_width, self.config.frames_per_segment
        b, f, c = mfcc.shape
        s0, s1, s2 = mfcc.strides
        windows = np.ndarray((b, n, c, w), mfcc.dtype, mfcc, (f - n - w + 1) * s1, (s0, s1, s2, s1))  # (B, n, n_mfcc, w)
        return windows @ self.delta_weights

    def _hpss(self, mel_power: np.ndarray, out: np.ndarray) -> None:
        """12 descriptors of a causal median-filter harmonic/percussive split (see docs/features.md).

        Writes (B, frames_per_segment, 12) into ``out``.
        """
        cfg = self.config
        n = cfg.frames_per_segment
        kh, kp = cfg.harmonic_kernel, cfg.percussive_kernel
        # harmonic: median over the last kh windows of each band (causal in time)
        first = self._harm_first
        harm = median_of([mel_power[:, first + c : first + c + n] for c in range(kh)], self._harm_plan)  # (B, n, n_mels)
        # percussive: median over kp neighbouring bands within a window (edge-padded); one earlier window for flux
        m = mel_power[:, -(n + 1) :]
        padded = m.transpose(0, 2, 1)[:, self._perc_bands]  # (B, n_mels + kp - 1, n + 1), band-major planes
        perc_all = median_of([padded[:, c : c + cfg.n_mels] for c in range(kp)], self._perc_plan).transpose(0, 2, 1)  # (B, n + 1, n_mels)
        perc = perc_all[:, 1:]
        # soft (Wiener) masks split the window's power into harmonic and percussive parts
        h2, p2 = harm * harm, perc * perc
        mask_h = h2 / np.maximum(h2 + p2, AMIN * AMIN)
        cur = m[:, 1:]
        parts = np.empty((mel_power.shape[0], 2, n, cfg.n_mels))
        np.multiply(cur, mask_h, out=parts[:, 0])
        np.multiply(cur, 1.0 - mask_h, out=parts[:, 1])  # (B, 2, n, n_mels)
        energy = np.add.reduce(parts, axis=-1)  # (B, 2, n)
        safe = np.maximum(energy, AMIN)
        top = cfg.n_mels - 1
        centroid = (parts @ self.band_index) / safe
        spread = np.sqrt(np.maximum((parts @ self.band_index_sq) / safe - centroid**2, 0.0))
        logp = np.log(np.maximum(parts, AMIN))
        flatness = np.exp(np.add.reduce(logp, axis=-1) / cfg.n_mels) / np.maximum(energy / cfg.n_mels, AMIN)
        cum = np.add.accumulate(parts, axis=-1)
        rolloff = np.argmax(cum >= ROLLOFF * safe[..., None], axis=-1).astype(np.float64)
        logperc = np.log(np.maximum(perc_all, AMIN))
        flux = np.add.reduce(np.maximum(logperc[:, 1:] - logperc[:, :-1], 0.0), axis=-1) / cfg.n_mels
        out[:, :, 0:2] = (10.0 * np.log10(safe)).transpose(0, 2, 1)  # h_log_energy, p_log_energy
        out[:, :, 2] = energy[:, 0] / np.maximum(energy[:, 0] + energy[:, 1], AMIN)  # harmonic_ratio
        out[:, :, 3:5] = (centroid / top).transpose(0, 2, 1)
        out[:, :, 5:7] = (spread / top).transpose(0, 2, 1)
        out[:, :, 7:9] = flatness.transpose(0, 2, 1)
        out[:, :, 9:11] = (rolloff / top).transpose(0, 2, 1)
        out[:, :, 11] = flux

    # public API ---------------------------------------------------------------------------------
    def segment_features(self, x: np.ndarray) -> np.ndarray:
        """Features of one segment.

        x: (context_samples + segment_samples,) mono samples at ``config.sample_rate``; the last
        ``segment_samples`` are the segment, the rest its left context (zeros before a stream's start).
        Returns (frames_per_segment, n_features) float32.
        """
        cfg = self.config
        if x.ndim != 1 or x.shape[0] != cfg.input_samples:
            raise ValueError(f"segment_features needs ({cfg.input_samples},) samples, got {x.shape}")
        return self.run_features(x, 1)[0]

    def run_features(self, x: np.ndarray, count: int) -> np.ndarray:
        """Features of ``count`` consecutive segments at once (the bulk offline path): x holds the first one's
        left context and the segments, (context_samples + count * segment_samples,). Returns (count,
        frames_per_segment, n_features) float32, each bit-identical to ``segment_features`` of its own slice:
        every step is per window or per segment (per-row FFTs, elementwise operations, reductions along a
        row, one matrix product per segment; tests/dsp/test_features.py checks it)."""
        cfg = self.config
        if x.ndim != 1 or count < 1 or x.shape[0] != cfg.context_samples + count * cfg.segment_samples:
            raise ValueError(f"run_features needs ({cfg.context_samples} + {count} x {cfg.segment_samples},) samples, got {x.shape}")
        frames = self._frames(np.ascontiguousarray(x, dtype=np.float64), count)  # (n_windows, n_fft)
        mel_power = self._mel_power(frames, count)  # (count, n_frames, n_mels)
        mfcc = self._mfcc(mel_power)  # (count, n_frames, n_mfcc)
        out = np.empty((count, cfg.frames_per_segment, cfg.n_features), dtype=np.float32)
        out[:, :, : cfg.n_mfcc] = mfcc[:, -cfg.frames_per_segment :]
        out[:, :, cfg.n_mfcc : 2 * cfg.n_mfcc] = self._deltas(mfcc)
        hpss = np.empty((count, cfg.frames_per_segment, N_HPSS))
        self._hpss(mel_power, hpss)  # (count, n, 12) float64, cast once like the other columns
        out[:, :, 2 * cfg.n_mfcc :] = hpss
        return out

    def signal_features(self, audio: np.ndarray) -> np.ndarray:
        """Features of every complete segment of a signal that starts at stream time 0.

        audio: (n_samples,) mono at ``config.sample_rate``. Returns (n_segments, frames_per_segment,
        n_features) float32, segment i covering samples [i*S, (i+1)*S). A trailing partial segment is dropped.
        """
        return np.stack(list(self.iter_signal(audio))) if self.count_segments(len(audio)) else np.zeros(
            (0, self.config.frames_per_segment, self.config.n_features), dtype=np.float32
        )

    def count_segments(self, n_samples: int) -> int:
        return n_samples // self.config.segment_samples

    def iter_signal(self, audio: np.ndarray) -> Iterator[np.ndarray]:
        cfg = self.config
        padded = np.concatenate([np.zeros(cfg.context_samples, dtype=np.float32), np.asarray(audio, dtype=np.float32)])
        for i in range(self.count_segments(len(audio))):
            start = i * cfg.segment_samples
            yield self.segment_features(padded[start : start + cfg.input_samples])


class Segmenter:
    """Cuts a live stream into feature-ready slices (left context + segment), whatever the block sizes.

    push() copies each block into a preallocated buffer and yields, for every segment completed, the
    segment's index and its (context_samples + segment_samples,) slice. The slice is the internal buffer
    itself: use (or copy) it before advancing the generator, which overwrites it with the next segment
    (list(push(...)) gives the same buffer n times). The stream starts with ``context_samples`` zeros, as the offline pass.
    """

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._ctx = config.context_samples
        self._seg = config.segment_samples
        self._buf = np.zeros(config.input_samples, dtype=np.float32)
        self._fill = self._ctx  # samples held (context zeros count)
        self.segments_done = 0
        self.samples_in = 0

    def push(self, block: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        pos = 0
        while pos < block.shape[0]:
            take = min(block.shape[0] - pos, self._buf.shape[0] - self._fill)
            self._buf[self._fill : self._fill + take] = block[pos : pos + take]
            self._fill += take
            pos += take
            self.samples_in += take
            if self._fill == self._buf.shape[0]:
                yield self.segments_done, self._buf
                self.segments_done += 1
                # keep the last context_samples as the next segment's left context
                self._buf[: self._ctx] = self._buf[self._seg :]
                self._fill = self._ctx

    def push_runs(self, block: np.ndarray, most: int) -> Iterator[tuple[int, np.ndarray, int]]:
        """``push`` for the bulk path: yields (first segment index, samples, count) for runs of at most
        ``most`` consecutive completed segments, ``samples`` being the first one's left context and the
        segments (context_samples + count * segment_samples,), for FeatureExtractor.run_features. The
        same segments as ``push`` (and the two can be mixed on one stream); ``samples`` is valid until the
        generator advances."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        data = np.concatenate([self._buf[: self._fill], block])  # the next segment's context, held samples, the block
        n = (data.shape[0] - self._ctx) // self._seg
        for first in range(0, n, most):
            count = min(most, n - first)
            yield self.segments_done, data[first * self._seg : (first + count) * self._seg + self._ctx], count
            self.segments_done += count
        rest = data[n * self._seg :]  # the next segment's context and what there is of it
        self._buf[: rest.shape[0]] = rest
        self._fill = rest.shape[0]
        self.samples_in += block.shape[0]
