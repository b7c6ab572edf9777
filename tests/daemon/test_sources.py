"""Audio sources: file and stdin delivery and pacing, overflow bookkeeping across reopens."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

import audio_gen
from edge_asc.daemon.sources import FileSource, SourceError, StdinSource

def test_overflow_count_keeps_its_total_across_reopens():
    from edge_asc.daemon.sources import Source

    class Reopened(Source):  # the bookkeeping of every source: a microphone reopens like this
        def open(self):
            self._make_ring()

        def close(self):
            pass

    source = Reopened(ring_seconds=1.0)
    source.rate = 16000
    source.open()
    block = np.ones(source.ring.capacity, dtype=np.float32)
    assert source.ring.write(block) and not source.ring.write(block)  # the ring is full: one drop
    source.input_overflows += 2  # PortAudio's flags, counted by the callback
    assert source.overflows == 3
    source.open()  # same size: the ring is reset
    assert source.overflows == 3 and source.ring.overflows == 0 and source.input_overflows == 0
    source.ring.write(np.ones(source.ring.capacity + 1, dtype=np.float32))  # too long: dropped
    source.rate = 48000
    source.open()  # another rate: a new ring
    assert source.overflows == 4
    source.input_overflows += 1
    assert source.overflows == 5


# --- sources and conditioning -----------------------------------------------------------------------


def _drain(source, timeout=10.0):
    blocks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = source.finished
        source.ring.wait(0.05)
        while (item := source.ring.read()) is not None:
            blocks.append(item[0].copy())
        assert source.problem() is None
        if finished:
            return np.concatenate(blocks)
    raise AssertionError("the source did not finish")


def test_file_source_delivers_the_files_own_frames_and_paces_in_real_time(tmp_path):
    import soundfile as sf

    clip = audio_gen.scene("rain", 1.0, seed=7)
    path = tmp_path / "clip.wav"
    sf.write(str(path), clip, 16000, subtype="FLOAT")
    fast = FileSource(path, realtime=False, blocksize=333)
    fast.open()
    np.testing.assert_array_equal(_drain(fast)[:, 0], clip)
    paced = FileSource(path, realtime=True, blocksize=1600)
    t0 = time.monotonic()
    paced.open()
    np.testing.assert_array_equal(_drain(paced)[:, 0], clip)
    assert time.monotonic() - t0 >= 0.95  # 1 s of audio takes 1 s
    with pytest.raises(SourceError, match="missing.flac"):
        FileSource(tmp_path / "missing.flac")
    stereo = np.stack([clip, -clip], axis=1)[:11025]
    sf.write(str(path), stereo, 44100, subtype="FLOAT")  # mixing and resampling are the worker's (dsp.condition)
    raw = FileSource(path, realtime=False, blocksize=512)
    raw.open()
    assert (raw.rate, raw.channels) == (44100, 2)
    np.testing.assert_array_equal(_drain(raw), stereo)


def test_stdin_source_reads_s16le_frames_split_anywhere():
    pcm = (np.arange(-3000, 3000, dtype=np.int16).reshape(-1, 2) * 7).astype("<i2")
    raw = pcm.tobytes()

    class Trickle(io.RawIOBase):  # a pipe that hands out 3 bytes at a time (frames are 4 bytes)
        def __init__(self):
            self.pos = 0

        def readable(self):
            return True

        def readinto(self, b):
            n = min(3, len(b), len(raw) - self.pos)
            b[:n] = raw[self.pos : self.pos + n]
            self.pos += n
            return n

    source = StdinSource(16000, channels=2, blocksize=100, stream=io.BufferedReader(Trickle(), buffer_size=3))
    source.open()
    got = _drain(source)
    np.testing.assert_array_equal(got, pcm.astype(np.float32) / 32768.0)
    with pytest.raises(SourceError, match="cannot be reopened"):
        source.open()


def test_stdin_at_a_rate_outside_the_range_is_refused_naming_the_range():
    import io

    from edge_asc.daemon.sources import SourceError, StdinSource

    with pytest.raises(SourceError, match=r"stdin: sample rate 383999 Hz is outside the accepted 8000..192000 Hz \(--rate\)"):
        StdinSource(383_999, stream=io.BytesIO())
