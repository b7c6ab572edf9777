"""Audio sources feeding the ring buffer: a microphone (sounddevice), a file, raw PCM on stdin.

Every source has the same life cycle, driven by the daemon's worker: ``open()`` (raises SourceError
naming the device or file), then audio flows into ``source.ring`` as (frames, channels) float32 blocks
at ``source.rate``, ``problem()`` says whether the stream died, ``finished`` whether a finite source has
delivered everything, and ``close()``. Every source, a file too, delivers its own frames at its own rate:
mixing to mono and resampling to the model's rate happen after the ring, in the worker (the one
conditioning path, edge_asc.dsp.condition.Conditioner), so everything after the ring is the same for all.

The microphone is in edge_asc.daemon.mic; soundfile is imported when a file is read.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from edge_asc.dsp.audio_io import AudioFileError, audio_info, iter_blocks, rate_problem
from edge_asc.daemon.ring import RingBuffer

log = logging.getLogger(__name__)

FILE_BLOCK = 1024  # frames per file read when blocksize is 0
PCM_SCALE = 1.0 / 32768.0


class SourceError(Exception):
    """A source that cannot be opened or that failed; the message names the device or file."""


class Source(ABC):
    """Base: a producer of (frames, channels) float32 blocks into ``self.ring``."""

    kind = "source"
    finite = False  # files and stdin end; a microphone does not
    stuck = False  # a device call still blocked (a frozen sound server): see edge_asc.daemon.mic

    def __init__(self, ring_seconds: float = 4.0) -> None:
        self.ring_seconds = ring_seconds
        self.ring: RingBuffer | None = None
        self.rate: int = 0
        self.channels: int = 1
        self.opened_at = 0.0  # monotonic time of the last open()
        self.input_overflows = 0  # PortAudio input-overflow flags seen by the current stream (microphone)
        self._past_overflows = 0  # overflows of the rings and streams before the current one
        self._overflow_lock = threading.Lock()  # reopen vs status readers; never taken by the audio callback
        self.keepalive: Callable[[], object] = lambda: None  # called while open/close wait (the daemon's watchdog)

    @property
    def description(self) -> str:
        return self.kind

    def _make_ring(self) -> RingBuffer:
        """A fresh (or emptied) ring for the next open (no producer runs); the overflow counts so far go
        into the running total, so ``overflows`` never goes backwards."""
        frames = max(int(self.ring_seconds * self.rate), 4 * max(getattr(self, "blocksize", 0), FILE_BLOCK))
        reuse = self.ring is not None and self.ring.capacity == frames and self.ring.channels == self.channels
        ring = self.ring if reuse else RingBuffer(frames, self.channels)
        with self._overflow_lock:  # a status reader sees the total before or after this, never half of it
            self._past_overflows += self._current_overflows()
            self.input_overflows = 0
            if reuse:
                ring.reset()
            self.ring = ring
        return ring

    @abstractmethod
    def open(self) -> None:
        """Start delivering audio into ``self.ring`` (raises SourceError when it cannot)."""

    @abstractmethod
    def close(self) -> None:
        """Stop delivering audio; safe to call twice."""

    def problem(self) -> str | None:
        """Why the open stream no longer delivers (None while it works)."""
        return None

    @property
    def finished(self) -> bool:
        return False

    def _current_overflows(self) -> int:
        return (self.ring.overflows if self.ring is not None else 0) + self.input_overflows

    @property
    def overflows(self) -> int:
        """Since the source was made, across reopens: blocks dropped because the ring was full, plus
        PortAudio's input-overflow flags (audio the device lost before the callback saw it)."""
        with self._overflow_lock:
            return self._past_overflows + self._current_overflows()


# --- reader-thread sources ------------------------------------------------------------------------


class _ThreadSource(Source):
    """A source whose blocks come from a reader thread (file, stdin); it waits for room in the ring."""

    finite = True
    join_seconds = 1.0  # close() waits this long for the reader thread

    def __init__(self, ring_seconds: float = 4.0) -> None:
        super().__init__(ring_seconds)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = False
        self._error: str | None = None

    def _start(self) -> None:
        self._make_ring()
        self._stop.clear()
        self._done = False
        self._error = None
        self.opened_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"edge-asc-{self.kind}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._produce()
        except (OSError, ValueError, AudioFileError) as exc:
            self._error = str(exc)
            log.error("%s: %s", self.description, exc)
        except Exception as exc:  # a bug: keep the traceback, and report the source as failed
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("%s: reading failed", self.description)
        finally:
            self._done = True
            if self.ring is not None:
                self.ring.notify()

    @abstractmethod
    def _produce(self) -> None:
        """Read the whole input into the ring (runs in the reader thread)."""

    def problem(self) -> str | None:
        return self._error

    @property
    def finished(self) -> bool:
        return self._done and self._error is None

    def close(self) -> None:
        self._stop.set()
        if self.ring is not None:
            self.ring.close()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=self.join_seconds)


class FileSource(_ThreadSource):
    """A sound file read in blocks (audio_io.iter_blocks: its own channels at its own rate), paced to wall time or not."""

    kind = "file"

    def __init__(self, path: str | Path, realtime: bool = True, blocksize: int = FILE_BLOCK, ring_seconds: float = 4.0) -> None:
        super().__init__(ring_seconds)
        self.path = Path(path)
        self.realtime = realtime
        self.blocksize = blocksize or FILE_BLOCK
        info = self._info()
        self.rate, self.channels = info.sample_rate, info.channels
        self.duration = info.duration

    def _info(self):
        try:
            info = audio_info(self.path)
        except AudioFileError as exc:
            raise SourceError(str(exc)) from exc
        if info.frames == 0:
            raise SourceError(f"{self.path}: holds no audio")
        return info

    @property
    def description(self) -> str:
        return f"file:{self.path}" + (" (real time)" if self.realtime else "")

    def open(self) -> None:
        info = self._info()  # the file may have been replaced since
        self.rate, self.channels = info.sample_rate, info.channels
        self._start()

    def _produce(self) -> None:
        ring = self.ring
        start = time.monotonic()
        sent = 0
        for block in iter_blocks(self.path, block_frames=self.blocksize):
            if self.realtime:
                delay = start + (sent + block.shape[0]) / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            if not ring.write_wait(block, self._stop):
                return
            sent += block.shape[0]


class StdinSource(_ThreadSource):
    """Raw interleaved signed 16-bit little-endian PCM from a binary stream (standard input by default).

    A pipe gives the reader the same end of file whether its writer finished or was killed, so the
    daemon cannot tell them apart (a trailing partial frame is logged as a hint); the shell can:
    ``set -o pipefail`` makes ``arecord ... | edge-asc run --source stdin`` fail when arecord did."""

    kind = "stdin"
    join_seconds = 0.0  # its thread may sit in a blocking read of the pipe; it is a daemon thread

    def __init__(self, rate: int, channels: int = 1, blocksize: int = FILE_BLOCK, stream: BinaryIO | None = None, ring_seconds: float = 4.0) -> None:
        super().__init__(ring_seconds)
        if channels <= 0:
            raise SourceError(f"stdin needs a positive channel count, got {channels}")
        if rate_problem(rate):
            raise SourceError(f"stdin: {rate_problem(rate)} (--rate)")
        self.rate = rate
        self.channels = channels
        self.blocksize = blocksize or FILE_BLOCK
        if stream is None:
            stream = _stdin_stream()
        self.stream = stream
        self._opened = False

    @property
    def description(self) -> str:
        return f"stdin (s16le {self.rate} Hz x{self.channels})"

    def open(self) -> None:
        if self._opened:
            raise SourceError("standard input cannot be reopened")
        self._opened = True
        self._start()

    def _produce(self) -> None:
        ring, stream = self.ring, self.stream
        frame_bytes = 2 * self.channels
        want = self.blocksize * frame_bytes
        read = getattr(stream, "read1", stream.read)  # what is there now, up to a block
        pending = b""
        while not self._stop.is_set():
            data = read(want)
            if not data:
                break
            data = pending + data
            usable = len(data) - len(data) % frame_bytes
            pending = data[usable:]
            if usable == 0:
                continue
            block = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, self.channels)
            samples = block.astype(np.float32) * np.float32(PCM_SCALE)  # (frames, channels)
            for pos in range(0, samples.shape[0], ring.capacity):
                if not ring.write_wait(samples[pos : pos + ring.capacity], self._stop):
                    return
        if pending:
            log.warning("stdin: %d trailing bytes do not make a whole frame; ignored", len(pending))


def _stdin_stream() -> BinaryIO:
    """The process's standard input as a binary stream; SourceError when there is none (fd 0 closed)."""
    closed = SourceError("--source stdin: standard input is not open; pipe raw PCM into edge-asc run")
    try:
        os.fstat(0)
    except OSError:  # EBADF; Python may also have found it closed at start (sys.stdin None): the same line
        raise closed from None
    if sys.stdin is None:
        raise closed
    return sys.stdin.buffer


def make_source(spec, cfg_audio, model_rate: int) -> Source:
    """The source named by a SourceSpec (edge_asc.daemon.config) with the audio settings."""
    if spec.kind == "mic":
        from edge_asc.daemon.mic import MicSource  # here: mic imports this module's Source

        return MicSource(
            spec.arg,
            model_rate,
            samplerate=cfg_audio.samplerate,
            channels=cfg_audio.channels,
            blocksize=cfg_audio.blocksize,
            latency=cfg_audio.latency,
            ring_seconds=cfg_audio.ring_seconds,
        )
    if spec.kind == "file":
        return FileSource(spec.arg, realtime=cfg_audio.realtime, blocksize=cfg_audio.blocksize, ring_seconds=cfg_audio.ring_seconds)
    if spec.kind == "stdin":
        return StdinSource(
            cfg_audio.samplerate or model_rate,
            channels=cfg_audio.channels,
            blocksize=cfg_audio.blocksize,
            ring_seconds=cfg_audio.ring_seconds,
        )
    raise SourceError(f"unknown source kind {spec.kind!r}")
