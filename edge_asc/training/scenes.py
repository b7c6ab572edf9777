"""Scenes as references (a file and a cut, or a waveform in memory) with a stable content key.

A ``SceneRef`` is what the feature cache and the extraction workers need to know about a scene without
holding its audio: where to read it (``path`` and the [start, stop) cut in samples at the model's rate) or,
for the in-memory variant (tests, the fixture script, ``fit_scenes``), the waveform itself. Its ``key`` is
a SHA-256 of the content (the file's bytes plus the cut, or the samples), so a cache entry follows the audio,
not its name. File hashes and decoded samples are memoised per process by the file's (resolved path, size,
mtime_ns), so a file rewritten in place is hashed and decoded afresh. ``decoder_identity()`` names what turns
a file's bytes into samples (libsndfile, the mono mix, the resampler and its parameters); the feature cache's
keys include it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_asc.contract import file_sha256
from edge_asc.dsp import resample
from edge_asc.dsp.audio_io import read_audio

__all__ = ["SceneRef", "scene_refs", "content_sha256", "decoder_identity", "DECODE_VERSION"]

DECODE_VERSION = 2  # 2: soxr replaced the numpy resampler; bump when read_audio's decoding changes (mono mix, resampler) in a way its parameters do not show
_FILE_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 of the bytes
_DECODED: "OrderedDict[tuple[tuple[str, int, int], int], np.ndarray]" = OrderedDict()  # ((path, size, mtime_ns), rate) -> samples, least recent first
DECODED_BYTES_KEPT = 256 * 1024 * 1024  # per process: a file's chunks and the mixing partners are read again and again


def _file_memo(path: str | Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime_ns): what the per-process memos of a file's hash and samples are keyed by."""
    st = os.stat(path)
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def content_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, computed once per (path, size, mtime_ns) in this process."""
    memo = _file_memo(path)
    if memo not in _FILE_HASHES:
        _FILE_HASHES[memo] = file_sha256(path)
    return _FILE_HASHES[memo]


@functools.lru_cache(maxsize=1)
def decoder_identity() -> dict[str, object]:
    """What turns a file's bytes into the samples features are computed on (part of every feature cache key)."""
    import soundfile
    import soxr

    return {
        "version": DECODE_VERSION, "reader": f"libsndfile {soundfile.__libsndfile_version__}", "mono": "channel mean",
        "resampler": {"kind": "libsoxr", "soxr": soxr.__version__, "libsoxr": soxr.__libsoxr_version__,
                      "quality": resample.QUALITY},
    }


def _decoded(path: Path, sample_rate: int) -> np.ndarray:
    """A file's samples at ``sample_rate``; recently decoded files are kept up to DECODED_BYTES_KEPT."""
    memo = (_file_memo(path), sample_rate)
    if memo in _DECODED:
        _DECODED.move_to_end(memo)
        return _DECODED[memo]
    audio = read_audio(path, sample_rate)
    _DECODED[memo] = audio
    while len(_DECODED) > 1 and sum(a.nbytes for a in _DECODED.values()) > DECODED_BYTES_KEPT:
        _DECODED.popitem(last=False)
    return audio


@dataclass(frozen=True, eq=False)
class SceneRef:
    """One scene: ``path`` + cut [start, stop) in samples at the model's rate, or an in-memory ``waveform``."""

    path: Path | None
    start: int
    stop: int
    key: str  # hex SHA-256 of the content (file bytes + cut, or the samples)
    waveform: np.ndarray | None = None

    @classmethod
    def from_file(cls, path: str | Path, start: int, stop: int) -> "SceneRef":
        path = Path(path)
        key = hashlib.sha256(f"file {content_sha256(path)} [{int(start)}, {int(stop)})".encode()).hexdigest()
        return cls(path, int(start), int(stop), key)

    @classmethod
    def from_waveform(cls, x: np.ndarray, sample_rate: int) -> "SceneRef":
        """A scene held in memory (mono float32 at ``sample_rate``, the model's rate), keyed by its samples."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        h = hashlib.sha256(f"samples {x.shape[0]} at {int(sample_rate)}".encode())
        h.update(x.tobytes())
        return cls(None, 0, int(x.shape[0]), h.hexdigest(), x)

    @property
    def n_samples(self) -> int:
        return self.stop - self.start

    @property
    def seed_key(self) -> int:
        """A stable integer of the content (the first 8 bytes of ``key``): the scene's counter in random streams."""
        return int(self.key[:16], 16)

    def load(self, sample_rate: int) -> np.ndarray:
        """The scene's samples (mono float32); raises AudioFileError naming the file when it cannot be decoded."""
        if self.waveform is not None:
            return self.waveform
        return _decoded(self.path, sample_rate)[self.start : self.stop]


def scene_refs(dataset, indices: Sequence[int] | np.ndarray | None = None) -> list[SceneRef]:
    """SceneRefs of a Dataset's scenes (all when ``indices`` is None), in that order, without decoding audio."""
    idx = range(len(dataset.scenes)) if indices is None else [int(i) for i in indices]
    refs = []
    for i in idx:
        scene = dataset.scenes[i]
        refs.append(SceneRef.from_file(scene.path, *scene.cut(dataset.sample_rate)))
    return refs
