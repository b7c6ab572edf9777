"""Reading audio files: whatever libsndfile reads (wav, flac, ogg...), mixed to mono, resampled.

``iter_blocks`` decodes a file as it is, (frames, channels) at its own rate, refusing NaN and infinite
samples (a corrupt file, named); ``iter_audio`` and ``read_audio`` put those blocks through the one
conditioning path every input takes (edge_asc.dsp.condition.Conditioner: mono, the model's rate).

soundfile is imported when a file is read, so the daemon listening to a microphone never loads it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edge_asc.dsp.condition import Conditioner, condition, to_mono  # noqa: F401  (to_mono: audio_io's name for it)

log = logging.getLogger(__name__)

READ_BLOCK = 65536  # frames per read when streaming a file
# The input sample rates edge-asc accepts, from files, stdin (--rate) and microphones. Telephony's 8 kHz to
# the 192 kHz of studio interfaces covers every real input; a header claiming more (10 MHz, 2^31-1 Hz) is a
# hostile or broken file, refused before the resampler is built (its filter grows with the rate).
MIN_RATE = 8000
MAX_RATE = 192000


class AudioFileError(Exception):
    """A file that cannot be used as audio; the message names the file and the reason."""


def rate_problem(rate: int) -> str | None:
    """Why ``rate`` (Hz) is not an accepted input sample rate (MIN_RATE..MAX_RATE), or None."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        return f"sample rate {rate} Hz is outside the accepted {MIN_RATE}..{MAX_RATE} Hz"
    return None


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _soundfile():
    import soundfile

    return soundfile


def audio_info(path: str | Path) -> AudioInfo:
    path = Path(path)
    sf = _soundfile()
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or OSError by version
        raise AudioFileError(f"{path}: cannot read audio ({_reason(exc, Path(path))})") from exc
    problem = rate_problem(int(info.samplerate))
    if problem is not None:
        raise AudioFileError(f"{path}: {problem}")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def _reason(exc: Exception, path: Path | None = None) -> str:
    """Why a file could not be read, in a few words: the file system's reason when there is one (libsndfile
    says only "System error" for a missing file), else libsndfile's last line."""
    if path is not None:
        if not path.exists():
            return "not found"
        if path.is_dir():
            return "is a directory"
        if not os.access(path, os.R_OK):
            return "permission denied"
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def iter_blocks(path: str | Path, block_frames: int = READ_BLOCK) -> Iterator[np.ndarray]:
    """Yield a file's (frames, channels) float32 blocks at its own rate (audio_info(path).sample_rate)."""
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0 or info.channels == 0:
        raise AudioFileError(f"{path}: holds no audio")
    sf = _soundfile()
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if not np.isfinite(block.sum(dtype=np.float64)):  # NaN/inf propagate into the sum
                    raise AudioFileError(f"{path}: contains NaN or infinite samples")
                yield block
    except AudioFileError:
        raise
    except Exception as exc:
        raise AudioFileError(f"{path}: cannot decode audio ({_reason(exc, Path(path))})") from exc


def iter_audio(path: str | Path, sample_rate: int, block_frames: int = READ_BLOCK) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks of a file at ``sample_rate`` (streamed; the same samples as read_audio)."""
    conditioner = Conditioner(audio_info(path).sample_rate, sample_rate, str(path))
    for block in iter_blocks(path, block_frames):
        out = conditioner.process(block)
        if out.size:
            yield out
    tail = conditioner.flush()
    if tail.size:
        yield tail


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Whole file as mono float32 at ``sample_rate``. Raises AudioFileError naming the file."""
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0 or info.channels == 0:
        raise AudioFileError(f"{path}: holds no audio")
    sf = _soundfile()
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioFileError(f"{path}: cannot decode audio ({_reason(exc, Path(path))})") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: holds no audio")
    if not np.isfinite(data.sum(dtype=np.float64)):
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    return condition(data, int(sr), sample_rate, str(path))
