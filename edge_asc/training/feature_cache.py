"""The feature cache: each scene's (n, 20, 52) float32 features, clean or for one augmentation draw, on disk.

One entry is one ``.npy`` file named by the SHA-256 of what it depends on (``clean_key``, ``draw_key``): the
scene's content key, the feature settings and FEATURE_VERSION, the decoder (scenes.decoder_identity: libsndfile's
version, the resampler and its parameters), and for a draw the augment settings and AUGMENT_VERSION, the seed,
the draw number and the mixing partner's content key. After the array's bytes comes a trailer
(``TRAILER_MAGIC`` + CRC-32 of those bytes): a truncated or altered file is detected (size against the
header's shape, the trailer, the checksum), logged once and rebuilt. Entries are written atomically
(edge_asc.fsutil), so several processes may share a directory (two writers write the same bytes), and
read memory-mapped (np.load mmap_mode="r"), so the training process does not hold a whole epoch in RAM.

The directory: ``--cache-dir``, else $EDGE_ASC_CACHE, else $XDG_CACHE_HOME/edge-asc/features, else
~/.cache/edge-asc/features. ``FeatureCache.disabled()`` (--no-cache) keeps entries in memory for the life
of the process only. Nothing here changes what is trained: the directory is not a training setting.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edge_asc.config import to_dict
from edge_asc.dsp.features import FEATURE_VERSION, FeatureConfig
from edge_asc.fsutil import atomic_open
from edge_asc.training.augment import AUGMENT_VERSION
from edge_asc.training.config import AugmentConfig
from edge_asc.training.scenes import decoder_identity

__all__ = ["FeatureCache", "CacheEntryError", "clean_key", "draw_key", "CACHE_ENV", "CACHE_FORMAT"]

log = logging.getLogger(__name__)

CACHE_ENV = "EDGE_ASC_CACHE"
CACHE_FORMAT = 1  # of an entry file; part of every key
TRAILER_MAGIC = b"EASCcrc1"
TRAILER = struct.Struct("<8sI")  # magic, CRC-32 of the array bytes


class CacheEntryError(ValueError):
    """A cache file that is not a complete, intact entry; ``file_id`` (st_dev, st_ino) of the file that was read
    (None when it could not be opened)."""

    def __init__(self, message: str, file_id: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.file_id = file_id


def _unlink_if_same(path: Path, file_id: tuple[int, int] | None) -> None:
    """Remove the corrupt file at ``path`` only if it is still the one that was read (``file_id``): another
    process may have renamed a good entry into place meanwhile, which must stay."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if file_id is not None and (st.st_dev, st.st_ino) == file_id:
        path.unlink(missing_ok=True)


def clean_key(scene_key: str, features: FeatureConfig) -> str:
    """Key of a scene's clean features (``scene_key``: SceneRef.key, which covers the file's bytes and the cut)."""
    return _key({"kind": "clean", "scene": scene_key, "features": features.to_dict(), "feature_version": FEATURE_VERSION})


def draw_key(scene_key: str, partner_key: str | None, features: FeatureConfig, augment: AugmentConfig, seed: int, draw: int) -> str:
    """Key of a scene's features for augmentation draw ``draw`` (mixed with the scene ``partner_key``, or none)."""
    return _key({
        "kind": "draw", "scene": scene_key, "partner": partner_key, "features": features.to_dict(), "feature_version": FEATURE_VERSION,
        "augment": to_dict(augment), "augment_version": AUGMENT_VERSION, "seed": int(seed), "draw": int(draw),
    })


def _key(parts: dict[str, Any]) -> str:
    """Every key also covers the entry format and the decoder (a file's bytes -> samples: scenes.decoder_identity)."""
    parts = parts | {"format": CACHE_FORMAT, "decoder": decoder_identity()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=list).encode()).hexdigest()


def encode_entry(features: np.ndarray) -> bytes:
    """An entry file's bytes: the .npy of ``features`` (float32, C order) followed by the trailer."""
    arr = np.ascontiguousarray(features, dtype=np.float32)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue() + TRAILER.pack(TRAILER_MAGIC, zlib.crc32(arr.tobytes()))


def read_entry(path: Path, verify: bool = True) -> np.ndarray:
    """The memory-mapped array of an entry file; CacheEntryError when it is truncated or altered."""
    file_id = None
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            file_id = (st.st_dev, st.st_ino)
            version = np.lib.format.read_magic(f)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise CacheEntryError(f".npy format {version} not written by this cache")
            shape, fortran, dtype = readers[version](f)
            offset = f.tell()
            if dtype != np.float32 or fortran or len(shape) != 3:
                raise CacheEntryError(f"holds {dtype} {shape}, expected float32 (n, frames, features)")
            nbytes = int(np.prod(shape)) * 4
            size = st.st_size
            if size != offset + nbytes + TRAILER.size:
                raise CacheEntryError(f"{size} bytes, expected {offset + nbytes + TRAILER.size}")
            f.seek(offset + nbytes)
            magic, crc = TRAILER.unpack(f.read(TRAILER.size))
            if magic != TRAILER_MAGIC:
                raise CacheEntryError("no checksum trailer")
            if verify:
                f.seek(offset)
                if zlib.crc32(f.read(nbytes)) != crc:
                    raise CacheEntryError("checksum mismatch")
    except CacheEntryError as exc:
        raise CacheEntryError(str(exc), file_id) from None
    except (OSError, ValueError, struct.error) as exc:
        raise CacheEntryError(str(exc), file_id) from exc
    if nbytes == 0:
        return np.zeros(shape, dtype=np.float32)
    return np.memmap(path, dtype=np.float32, mode="r", offset=offset, shape=shape)


class FeatureCache:
    """Entries by key: on disk under ``directory``, or in this process's memory when ``directory`` is None."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = None if directory is None else Path(directory).expanduser()
        self._memory: dict[str, np.ndarray] = {}
        self._verified: set[str] = set()  # entries whose checksum was checked by this process
        self._reported: set[str] = set()  # corrupt entries already logged

    @staticmethod
    def default_dir() -> Path:
        """$EDGE_ASC_CACHE, else $XDG_CACHE_HOME/edge-asc/features, else ~/.cache/edge-asc/features."""
        if os.environ.get(CACHE_ENV):
            return Path(os.environ[CACHE_ENV]).expanduser()
        base = Path(os.environ["XDG_CACHE_HOME"]).expanduser() if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
        return base / "edge-asc" / "features"

    @classmethod
    def open(cls, directory: Path | str | None = None) -> "FeatureCache":
        """The cache in ``directory`` (None: ``default_dir()``); created when missing."""
        path = cls.default_dir() if directory is None else Path(directory).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"feature cache {path}: cannot create it ({exc.strerror or exc})") from exc
        return cls(path)

    @classmethod
    def disabled(cls) -> "FeatureCache":
        """No files: entries live in this process's memory only (--no-cache)."""
        return cls(None)

    @property
    def on_disk(self) -> bool:
        return self.directory is not None

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory) if self.on_disk else 'in memory'})"

    def path(self, key: str) -> Path:
        if self.directory is None:
            raise ValueError("an in-memory feature cache has no files")
        return self.directory / key[:2] / f"{key}.npy"

    def has(self, key: str) -> bool:
        """Whether ``key`` is stored (on disk: a file exists; its integrity is checked by ``get``)."""
        return key in self._memory or (self.on_disk and self.path(key).is_file())

    def get(self, key: str) -> np.ndarray | None:
        """The entry (memory-mapped when on disk), or None when missing or corrupt (a corrupt file is removed)."""
        if key in self._memory:
            return self._memory[key]
        if not self.on_disk:
            return None
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            arr = read_entry(path, verify=key not in self._verified)
        except CacheEntryError as exc:
            if key not in self._reported:
                self._reported.add(key)
                log.warning("feature cache: corrupt entry %s (%s); rebuilding it", path, exc)
            _unlink_if_same(path, exc.file_id)
            return None
        self._verified.add(key)
        return arr

    def forget(self, keys: Iterable[str]) -> None:
        """Drop in-memory entries (an on-disk cache keeps its files)."""
        for key in keys:
            self._memory.pop(key, None)

    def put(self, key: str, features: np.ndarray) -> np.ndarray:
        """Store ``features`` under ``key`` (atomically on disk) and return the stored entry."""
        if not self.on_disk:
            self._memory[key] = np.ascontiguousarray(features, dtype=np.float32)
            return self._memory[key]
        with atomic_open(self.path(key)) as f:
            f.write(encode_entry(features))
        self._verified.add(key)
        return read_entry(self.path(key), verify=False)

    def size_bytes(self) -> int:
        """Bytes of every entry (on disk: the files; in memory: the arrays)."""
        if not self.on_disk:
            return sum(a.nbytes for a in self._memory.values())
        return sum(p.stat().st_size for p in self.directory.glob("??/*.npy"))
