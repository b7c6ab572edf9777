"""A preallocated single-producer / single-consumer ring buffer between an audio source and the worker.

The producer (PortAudio's callback thread, or a file/stdin reader thread) calls ``write``: it copies the
block into preallocated storage, notes the block's monotonic arrival time, and wakes the consumer. It
never allocates arrays, never blocks and never overwrites unread audio: a block that does not fit is
dropped whole and counted (``overflows``, ``dropped_frames``). Sources that may wait (files, stdin) use
``write_wait`` instead, which waits for room.

The consumer (the worker) calls ``read`` and receives the blocks in the order they were written, each
with the time it entered the buffer, so the latency of a decision can be measured from the moment its
last sample arrived.

Only the producer moves the write counters and only the consumer moves the read counters; under the
GIL, plain integer stores are atomic, so the counters need no lock. The one lock on the audio path is
threading.Event's own, taken to wake the consumer; ``write`` sets the event only when it is not set
already (the consumer is asleep), and the consumer holds that lock for microseconds.

Each accepted write takes one block record as well as its frames. The records are sized so that a full
ring of blocks of MIN_BLOCK_FRAMES frames or more never runs out of them; with smaller blocks (an
unusual PortAudio setting) writes may be dropped, and counted, before the frames run out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

MIN_BLOCK_FRAMES = 32  # block records: enough for a full ring of blocks this small (2 ms at 16 kHz)
MIN_BLOCKS = 4096  # block records held at least, whatever the capacity


@dataclass(frozen=True)
class RingStats:
    written_frames: int  # frames accepted
    read_frames: int  # frames handed to the consumer
    overflows: int  # writes dropped because the consumer lagged (the ring was full)
    dropped_frames: int  # frames in those dropped writes
    fill_frames: int  # frames waiting to be read
    capacity_frames: int


class RingBuffer:
    """``capacity`` frames of ``channels`` float32 samples; blocks are read back whole, in order."""

    def __init__(self, capacity: int, channels: int = 1, max_blocks: int | None = None) -> None:
        if max_blocks is None:
            max_blocks = max(MIN_BLOCKS, -(-int(capacity) // MIN_BLOCK_FRAMES))
        if capacity <= 0 or channels <= 0 or max_blocks <= 0:
            raise ValueError(f"ring needs positive capacity/channels/max_blocks, got {capacity}/{channels}/{max_blocks}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=np.float32)
        # one record per accepted write: start frame (absolute), frame count, arrival time
        self._max_blocks = int(max_blocks)
        self._starts = np.zeros(self._max_blocks, dtype=np.int64)
        self._counts = np.zeros(self._max_blocks, dtype=np.int64)
        self._times = np.zeros(self._max_blocks, dtype=np.float64)
        self._out = np.zeros((self.capacity, self.channels), dtype=np.float32)  # consumer's contiguous copy
        self._wake = threading.Event()  # set by the producer, cleared by the consumer
        self._room = threading.Event()  # set by the consumer, awaited by write_wait
        self._closed = False
        self.reset()

    def reset(self) -> None:
        """Forget everything (only while neither side is running)."""
        self._w_frames = 0  # absolute frames written (producer)
        self._w_blocks = 0  # blocks written (producer)
        self._r_frames = 0  # absolute frames consumed (consumer)
        self._r_blocks = 0  # blocks consumed (consumer)
        self.overflows = 0
        self.dropped_frames = 0
        self.last_write = 0.0  # monotonic time of the last accepted write (0: none yet)
        self._closed = False
        self._wake.clear()
        self._room.set()

    # --- producer side ---------------------------------------------------------------------------
    def write(self, block: np.ndarray, now: float | None = None) -> bool:
        """Copy a (frames, channels) or (frames,) float block in; False (and counted) if it does not fit."""
        frames = block.shape[0]
        if frames == 0:
            return True
        if frames > self.capacity - (self._w_frames - self._r_frames) or self._w_blocks - self._r_blocks >= self._max_blocks:
            self.overflows += 1
            self.dropped_frames += frames
            self._wake_consumer()
            return False
        start = self._w_frames % self.capacity
        first = min(frames, self.capacity - start)
        data = self._data
        if block.ndim == 1:
            data[start : start + first, 0] = block[:first]
            if first < frames:
                data[: frames - first, 0] = block[first:]
        else:
            data[start : start + first] = block[:first]
            if first < frames:
                data[: frames - first] = block[first:]
        slot = self._w_blocks % self._max_blocks
        t = time.monotonic() if now is None else now
        self._starts[slot] = self._w_frames
        self._counts[slot] = frames
        self._times[slot] = t
        self.last_write = t
        self._w_frames += frames  # publish: the consumer reads counters after the data is in place
        self._w_blocks += 1
        self._wake_consumer()
        return True

    def _wake_consumer(self) -> None:
        """Set the wake event unless it is set already: is_set() takes no lock, set() does."""
        if not self._wake.is_set():
            self._wake.set()

    def write_wait(self, block: np.ndarray, stop: threading.Event | None = None, now: float | None = None) -> bool:
        """Like write, but waits for room instead of dropping (for sources that can wait). False if stopped."""
        if block.shape[0] > self.capacity:
            raise ValueError(f"block of {block.shape[0]} frames exceeds the ring's {self.capacity}")
        while True:
            if self._closed or (stop is not None and stop.is_set()):
                return False
            free = self.capacity - (self._w_frames - self._r_frames)
            if block.shape[0] <= free and self._w_blocks - self._r_blocks < self._max_blocks:
                return self.write(block, now)
            self._room.clear()
            free = self.capacity - (self._w_frames - self._r_frames)  # re-check after clearing (no lost wake-up)
            if block.shape[0] <= free and self._w_blocks - self._r_blocks < self._max_blocks:
                continue
            self._room.wait(0.05)

    def notify(self) -> None:
        """Wake the consumer without data (the producer has news: it ended or failed)."""
        self._wake.set()

    def close(self) -> None:
        """Wake everyone; write_wait returns False from now on."""
        self._closed = True
        self._wake.set()
        self._room.set()

    # --- consumer side ---------------------------------------------------------------------------
    def wait(self, timeout: float | None) -> bool:
        """Wait until a block may be available (or the ring is closed); True if one is."""
        if self._w_blocks > self._r_blocks:
            return True
        self._wake.wait(timeout)
        self._wake.clear()
        return self._w_blocks > self._r_blocks

    def read(self) -> tuple[np.ndarray, float] | None:
        """The next block as (frames, channels) float32 and its arrival time, or None if none is waiting.

        The array is the consumer's own buffer: it stays valid until the next read().
        """
        if self._w_blocks == self._r_blocks:
            return None
        slot = self._r_blocks % self._max_blocks
        start, frames, t = int(self._starts[slot]), int(self._counts[slot]), float(self._times[slot])
        pos = start % self.capacity
        first = min(frames, self.capacity - pos)
        out = self._out[:frames]
        out[:first] = self._data[pos : pos + first]
        if first < frames:
            out[first:] = self._data[: frames - first]
        self._r_frames = start + frames
        self._r_blocks += 1
        self._room.set()
        return out, t

    def stats(self) -> RingStats:
        w, r = self._w_frames, self._r_frames
        return RingStats(w, r, self.overflows, self.dropped_frames, w - r, self.capacity)

    @property
    def closed(self) -> bool:
        return self._closed
