"""Streaming band-limited resampling in numpy (polyphase windowed sinc), block-size invariant.

The offline path (``resample``) is the streaming resampler fed in one block and flushed, so a file
resampled offline and the same file streamed in blocks of any size give the same samples.
Output sample ``m`` sits at input time ``m * in_rate / out_rate`` (no added delay); it needs
``half_width`` input samples after that time, which is the resampler's latency.
"""

from __future__ import annotations

from math import gcd

import numpy as np

ZERO_CROSSINGS = 10  # half-width of the sinc in zero crossings of the lower of the two rates
ROLLOFF = 0.94  # cutoff as a fraction of the lower Nyquist frequency
KAISER_BETA = 8.6


class StreamResampler:
    """Resample a stream of mono float32 blocks from ``in_rate`` to ``out_rate``."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        g = gcd(self.in_rate, self.out_rate)
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self.identity = self.up == self.down
        cutoff = ROLLOFF * min(1.0, self.up / self.down)  # in units of the input Nyquist
        self.half_width = int(np.ceil(ZERO_CROSSINGS / cutoff))  # input samples each side
        taps = np.arange(-self.half_width + 1, self.half_width + 1, dtype=np.float64)  # offsets from floor(t)
        phases = np.arange(self.up, dtype=np.float64) / self.up  # fractional part of t
        t = taps[None, :] - phases[:, None]  # (up, 2*half_width): input offset minus exact position
        # Kaiser window evaluated at each tap's exact offset (as np.kaiser, but not only at whole samples:
        # a linearly interpolated window leaves a -45 dB error floor when upsampling 2x)
        inside = np.abs(t) <= self.half_width
        ratio = np.sqrt(np.clip(1.0 - (t / self.half_width) ** 2, 0.0, None))
        win = np.where(inside, np.i0(KAISER_BETA * ratio) / np.i0(KAISER_BETA), 0.0)
        self.filters = (cutoff * np.sinc(cutoff * t) * win).astype(np.float64)  # (up, taps)
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(self.half_width - 1, dtype=np.float64)  # history; zeros before the stream
        self._buf_start = -(self.half_width - 1)  # absolute input index of _buf[0]
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples emitted

    def _emit(self, available_end: int) -> np.ndarray:
        """Outputs whose input window ends before ``available_end`` (absolute input index)."""
        # output m needs input up to floor(m*down/up) + half_width (inclusive)
        last_m = ((available_end - 1 - self.half_width) * self.up) // self.down  # floor; may be < n_out
        n = max(0, last_m + 1 - self._n_out)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        m = np.arange(self._n_out, self._n_out + n, dtype=np.int64) * self.down  # output times x up
        first = m // self.up - self.half_width + 1 - self._buf_start  # each output's first input, in _buf
        windows = np.lib.stride_tricks.sliding_window_view(self._buf, 2 * self.half_width)
        out = np.einsum("ij,ij->i", windows[first], self.filters[m % self.up])  # one gather, no loop over phases
        self._n_out += n
        # drop history no longer needed by the next output
        next_first = (self._n_out * self.down) // self.up - self.half_width + 1
        drop = next_first - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out.astype(np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed a mono block; returns every output sample that is now computable."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self.identity:
            return block.copy()
        self._buf = np.concatenate([self._buf, block.astype(np.float64)])
        self._n_in += block.shape[0]
        return self._emit(self._n_in)

    def flush(self) -> np.ndarray:
        """End of stream: emit the outputs up to the input's end, reading zeros after it."""
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        total_out = -(-self._n_in * self.up // self.down)  # ceil(n_in * up / down)
        self._buf = np.concatenate([self._buf, np.zeros(self.half_width + 1)])
        out = self._emit(self._n_in + self.half_width + 1)
        keep = max(0, total_out - (self._n_out - out.shape[0]))
        return out[:keep]


def resample(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole mono signal (float32): the streaming resampler fed in one block, then flushed."""
    r = StreamResampler(in_rate, out_rate)
    if r.identity:
        return np.asarray(x, dtype=np.float32).copy()
    return np.concatenate([r.process(x), r.flush()])
