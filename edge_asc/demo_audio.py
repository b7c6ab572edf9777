"""The demo's audio: a few ambience files from Debian's archive that the shipped model never heard.

``edge_asc/data/demo_sources.csv`` lists each file's package, version, path in the package, scene label,
licence, origin and sha256 (chosen from ../shared/data/debian-ambient/manifest.csv: small packages, files
whose independence scores say they copy no training or held-out recording). Nothing here is audio: on
first use the packages are fetched by edge_asc.archive (``apt-get download``, never installed, in a
temporary folder) and only the listed files are kept in ``$XDG_CACHE_HOME/edge-asc/demo`` (default
~/.cache/edge-asc/demo), each checked against its sha256. Later runs use the cache; a cached file whose
sha256 no longer matches is fetched again.

Runtime module (runs on the device install): numpy, soundfile and the standard library only.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edge_asc import archive
from edge_asc.archive import ArchiveUnavailable, cache_root, cached_path, sha256_of  # noqa: F401 (the demo's interface)
from edge_asc.dsp.audio_io import iter_audio, read_audio

log = logging.getLogger(__name__)

SOURCES = Path(__file__).resolve().parent / "data" / "demo_sources.csv"
DemoAudioUnavailable = ArchiveUnavailable  # the demo's audio cannot be fetched; the message is one line


@dataclass(frozen=True)
class DemoFile:
    package: str
    version: str
    path: str  # inside the package, absolute as dpkg installs it
    label: str
    seconds: float | None  # how much of the file the demo plays (None: all of it)
    licence: str
    origin: str
    sha256: str

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class Place:
    """One scene of the demo: its files' audio joined, at the model's rate."""

    label: str
    audio: np.ndarray
    files: tuple[DemoFile, ...]


def load_sources(path: Path = SOURCES) -> list[DemoFile]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path} lists no files")
    return [
        DemoFile(r["package"], r["version"], r["path"], r["label"], float(r["seconds"]) if r["seconds"].strip() else None,
                 r["licence"], r["origin"], r["sha256"].lower())  # fmt: skip
        for r in rows
    ]


def default_cache_dir() -> Path:
    return cache_root() / "demo"


def fetch(files: list[DemoFile], cache: Path | None = None, say: Callable[[str], None] = print) -> dict[DemoFile, Path]:
    """Each file's path in the cache, fetching the packages of those missing or corrupt (edge_asc.archive)."""
    return archive.fetch(files, cache or default_cache_dir(), say=lambda line: say(f"demo: {line}")).paths


def load_places(sample_rate: int, files: list[DemoFile] | None = None, cache: Path | None = None,
                say: Callable[[str], None] = print) -> list[Place]:  # fmt: skip
    """The demo's scenes in list order: each label's files fetched (or cached), decoded, cut and joined."""
    files = files if files is not None else load_sources()
    paths = fetch(files, cache, say)
    by_label: dict[str, list[DemoFile]] = {}
    for f in files:
        by_label.setdefault(f.label, []).append(f)
    places = []
    for label, group in by_label.items():
        parts = []
        for f in group:
            parts.append(_decode(paths[f], sample_rate, f.seconds))
        places.append(Place(label, np.concatenate(parts), tuple(group)))
    return places


def _decode(path: Path, sample_rate: int, seconds: float | None) -> np.ndarray:
    """The file's first ``seconds`` (None: all of it) as mono at ``sample_rate``, decoding no further than needed."""
    if seconds is None:
        return read_audio(path, sample_rate)
    want, blocks, have = int(seconds * sample_rate), [], 0
    for block in iter_audio(path, sample_rate):
        blocks.append(block)
        have += block.shape[0]
        if have >= want:
            break
    return np.concatenate(blocks)[:want].astype(np.float32, copy=False)
