"""The demo's audio: a few ambience files from Debian's archive that the shipped model never heard.

``edge_asc/data/demo_sources.csv`` lists each file's package, version, path in the package, scene label,
licence, origin and sha256 (chosen from ../shared/data/debian-ambient/manifest.csv: small packages, files
whose independence scores say they copy no training or held-out recording). Nothing here is audio: on
first use the packages are fetched with ``apt-get download`` (never installed) into
``$XDG_CACHE_HOME/edge-asc/demo`` (default ~/.cache/edge-asc/demo), unpacked with ``dpkg-deb -x`` in a
temporary folder, and only the listed files are kept, each checked against its sha256. Later runs use the
cache; a cached file whose sha256 no longer matches is fetched again.

Runtime module (runs on the device install): numpy, soundfile and subprocess only.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edge_asc.dsp.audio_io import iter_audio, read_audio
from edge_asc.fsutil import atomic_write_file

log = logging.getLogger(__name__)

SOURCES = Path(__file__).resolve().parent / "data" / "demo_sources.csv"
APT_TIMEOUT_S = 600.0  # a slow mirror; apt-get prints its own progress meanwhile


class DemoAudioUnavailable(Exception):
    """The demo's audio cannot be fetched (no apt-get, no network, a changed archive); the message is one line."""


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
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-asc" / "demo"


def cached_path(cache: Path, f: DemoFile) -> Path:
    return cache / f"{f.sha256[:16]}-{f.name}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(files: list[DemoFile], cache: Path | None = None, say: Callable[[str], None] = print) -> dict[DemoFile, Path]:
    """Each file's path in the cache, fetching the packages of those missing or corrupt."""
    cache = cache or default_cache_dir()
    found: dict[DemoFile, Path] = {}
    wanted: dict[tuple[str, str], list[DemoFile]] = {}
    for f in files:
        path = cached_path(cache, f)
        if path.is_file() and sha256_of(path) == f.sha256:
            found[f] = path
            continue
        if path.exists():
            log.warning("%s: corrupt cached demo file (sha256 differs); fetching it again", path)
            path.unlink()
        wanted.setdefault((f.package, f.version), []).append(f)
    for (package, version), group in wanted.items():
        found.update(_fetch_package(package, version, group, cache, say))
    return found


def _fetch_package(package: str, version: str, files: list[DemoFile], cache: Path, say) -> dict[DemoFile, Path]:
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DemoAudioUnavailable(f"{tool} is not available to fetch {package} from Debian's archive")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        deb = _download(package, version, Path(tmp), say)
        root = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(deb), str(root)], f"dpkg-deb -x {deb.name}")
        out = {}
        for f in files:
            source = root / f.path.lstrip("/")
            if not source.is_file():
                raise DemoAudioUnavailable(f"{deb.name} holds no {f.path}")
            got = sha256_of(source)
            if got != f.sha256:
                raise DemoAudioUnavailable(f"{f.path} in {deb.name} has sha256 {got[:12]}..., not the listed {f.sha256[:12]}...")
            target = cached_path(cache, f)
            atomic_write_file(target, lambda tmp_path, src=source: shutil.copyfile(src, tmp_path))
            out[f] = target
        return out


def _download(package: str, version: str, where: Path, say) -> Path:
    """``apt-get download`` the listed version, else the archive's current one (the sha256 check decides)."""
    failures = []
    for spec in (f"{package}={version}", package):
        say(f"demo: downloading {spec} from Debian's archive (apt-get download; not installed)")
        try:
            _run(["apt-get", "download", spec], f"apt-get download {spec}", cwd=where)
        except DemoAudioUnavailable as exc:
            failures.append(str(exc))
            continue
        debs = sorted(where.glob(f"{package}_*.deb"))
        if debs:
            return debs[0]
        failures.append(f"apt-get download {spec} left no .deb")
    raise DemoAudioUnavailable("; ".join(failures))


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    """Run ``cmd`` with its progress on the terminal; a failure raises DemoAudioUnavailable with its last error line."""
    try:
        done = subprocess.run(cmd, cwd=cwd, stdout=None, stderr=subprocess.PIPE, text=True, timeout=APT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DemoAudioUnavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        last = errors[-1] if errors else f"exit code {done.returncode}"
        if "Unable to locate package" in last:
            last += " (no package lists: run sudo apt-get update once)"
        raise DemoAudioUnavailable(f"{what} failed: {last}")
    for line in done.stderr.splitlines():
        log.debug("%s: %s", cmd[0], line)


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
