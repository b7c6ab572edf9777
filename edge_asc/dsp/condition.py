"""The one conditioning path: (frames, channels) float32 at a source's rate -> mono float32 at the model's rate.

Every input goes through ``Conditioner`` the same way, block by block: a microphone's and stdin's blocks
after the daemon's ring (the worker), a file's blocks as they are decoded (audio_io.iter_audio and
read_audio, so ``classify``, enrolment, training and the daemon's file source all hear the same samples).
Steps: NaN and infinite samples -> 0 (counted, with a rate-limited warning; a device or driver may deliver
them, and a file reader refuses them before they get here: audio_io), the channel mean, then the streaming
resampler (edge_asc.dsp.resample), whose output does not depend on the block sizes.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from edge_asc.dsp.resample import StreamResampler

log = logging.getLogger(__name__)

NONFINITE_WARN_INTERVAL_S = 60.0  # at most one warning about NaN/inf samples per this long, per source


def to_mono(block: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> (frames,) float32 channel mean."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 1:
        return block
    if block.shape[1] == 1:
        return block[:, 0]
    return block.mean(axis=1, dtype=np.float32)


class Conditioner:
    """(frames, channels) float32 at ``in_rate`` -> (n,) mono float32 at ``out_rate``, streamed."""

    def __init__(self, in_rate: int, out_rate: int, name: str = "audio") -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self.name = name  # the source, for the warning
        self.resampler = StreamResampler(in_rate, out_rate)
        self.nonfinite = 0  # NaN or infinite samples replaced with 0
        self._warned_at: float | None = None  # monotonic time of the last warning about them

    def process(self, block: np.ndarray) -> np.ndarray:
        mono = to_mono(self._finite(np.asarray(block)))  # (frames,)
        return mono if self.resampler.identity else self.resampler.process(mono)

    def _finite(self, block: np.ndarray) -> np.ndarray:
        """``block`` with NaN and infinite samples replaced by 0 (a copy only when there are any)."""
        if np.isfinite(block.sum(dtype=np.float64)):  # NaN/inf propagate into the sum: no mask per block
            return block
        ok = np.isfinite(block)
        bad = int(ok.size - np.count_nonzero(ok))
        self.nonfinite += bad
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= NONFINITE_WARN_INTERVAL_S:
            self._warned_at = now
            log.warning("%s: %d NaN or infinite samples replaced with 0 (%d so far)", self.name, bad, self.nonfinite)
        return np.where(ok, block, np.float32(0.0)).astype(np.float32, copy=False)

    def flush(self) -> np.ndarray:
        """End of stream: the resampler's tail."""
        return self.resampler.flush()


def condition(block: np.ndarray, in_rate: int, out_rate: int, name: str = "audio") -> np.ndarray:
    """A whole signal through a fresh Conditioner in one block, flushed: what streaming it in blocks gives."""
    c = Conditioner(in_rate, out_rate, name)
    out = c.process(block)
    return np.concatenate([out, c.flush()])
