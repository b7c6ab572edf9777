"""Files from Debian's archive: ``apt-get download`` a package (never installed), pick the listed files out of
it, check each against its sha256, and keep them in a cache. Used by the demo (edge_asc.demo_audio) and by the
dataset builder (edge_asc.debian_ambient).

- A package is downloaded with ``apt-get download <package>=<version>`` (else the archive's current version:
  the files' sha256 decide whether it still holds them) into a temporary folder, and moved into the deb folder
  only once apt-get has finished, which checks the download against the signed package lists: a killed
  download leaves no .deb there, only a temporary folder that the next fetch removes.
- Only the listed members are read: ``dpkg-deb --fsys-tarfile`` streamed through Python's tarfile, which
  stops reading when the last listed member has been seen (an 860 MB package is not unpacked).
- Each file goes into the file cache as ``<sha256[:16]>-<name>`` through fsutil's atomic writes; a cached
  file whose sha256 no longer matches is fetched again, and so is a kept .deb that cannot be read or no
  longer yields the listed sha256. A file that a freshly downloaded package yields with another sha256 is
  ``ChecksumMismatch``, naming the package, the path and both sha256.

Runtime module (the demo runs on the device install): standard library and fsutil only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

from edge_asc.fsutil import atomic_open

log = logging.getLogger(__name__)

APT_TIMEOUT_S = 1800.0  # the largest package used is 860 MB; apt-get prints its own progress meanwhile
PARTIAL_PREFIX = ".download-"  # temporary download folders in the deb folder
READ_BLOCK = 1 << 20


class ArchiveUnavailable(Exception):
    """A file cannot be fetched (no apt-get, no network, a changed archive); the message is one line."""


class ChecksumMismatch(ArchiveUnavailable):
    """A package yields a listed file with another sha256 than the list's."""


class Member(Protocol):
    """What a list row must say about a file in a package."""

    package: str
    version: str
    path: str  # inside the package, absolute as dpkg installs it
    sha256: str


@dataclass(frozen=True)
class Fetched:
    """What one fetch did: each file's cached path, and the packages it downloaded with their sizes."""

    paths: dict
    downloads: tuple[tuple[str, int], ...] = ()  # (package file name, bytes)

    @property
    def downloaded_bytes(self) -> int:
        return sum(size for _, size in self.downloads)


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/edge-asc`` (default ~/.cache/edge-asc)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "edge-asc"


def default_deb_dir() -> Path:
    return cache_root() / "debs"


def cached_path(cache: Path, f: Member) -> Path:
    return cache / f"{f.sha256[:16]}-{Path(f.path).name}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(files: Iterable[Member], cache: Path, debs: Path | None = None, say: Callable[[str], None] = print) -> Fetched:
    """Each file's path in ``cache``, fetching the packages of those missing or corrupt.

    ``debs``: where downloaded packages are kept for later fetches (None: a temporary folder in ``cache``,
    removed afterwards). ``say`` gets one line per package downloaded."""
    found, wanted = {}, {}
    for f in files:
        path = cached_path(cache, f)
        if path.is_file() and sha256_of(path) == f.sha256:
            found[f] = path
            continue
        if path.exists():
            log.warning("%s: corrupt cached file (sha256 differs); fetching it again", path)
            path.unlink()
        wanted.setdefault((f.package, f.version), []).append(f)
    downloads: list[tuple[str, int]] = []
    if wanted:
        require_tools()
        cache.mkdir(parents=True, exist_ok=True)
    for n, ((package, version), group) in enumerate(wanted.items(), start=1):
        progress = f"[{n}/{len(wanted)}] " if len(wanted) > 1 else ""
        found.update(_fetch_package(package, version, group, cache, debs, downloads, lambda line: say(progress + line)))
    return Fetched(found, tuple(downloads))


def require_tools() -> None:
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ArchiveUnavailable(f"{tool} is not available to fetch packages from Debian's archive")


def _fetch_package(package: str, version: str, files: list, cache: Path, debs: Path | None, downloads: list, say) -> dict:
    """The package's listed files into ``cache``: from a kept .deb if it yields them, else from a fresh download."""
    kept = debs is not None
    where = debs if kept else cache
    where.mkdir(parents=True, exist_ok=True)
    _remove_partial_downloads(where, package)
    deb = _kept_deb(where, package, version) if kept else None
    if deb is not None:
        say(f"{package} {version}: using the kept {deb.name} ({deb.stat().st_size / 1e6:.1f} MB)")
        try:
            return _extract(deb, files, cache)
        except ArchiveUnavailable as exc:
            log.warning("%s: %s; downloading it again", deb, exc)
            deb.unlink()
    with tempfile.TemporaryDirectory(dir=where, prefix=f"{PARTIAL_PREFIX}{package}-") as tmp:
        deb = _download(package, version, Path(tmp), say)
        downloads.append((deb.name, deb.stat().st_size))
        if kept:
            deb = Path(shutil.move(str(deb), where / deb.name))
        return _extract(deb, files, cache)


def _remove_partial_downloads(where: Path, package: str) -> None:
    for stale in where.glob(f"{PARTIAL_PREFIX}{package}-*"):
        log.info("removing %s, left by an interrupted download", stale)
        shutil.rmtree(stale, ignore_errors=True)


def _kept_deb(where: Path, package: str, version: str) -> Path | None:
    """A kept .deb of ``package``: the listed version if there, else the newest kept one."""
    debs = sorted(where.glob(f"{package}_*.deb"))
    exact = [d for d in debs if d.name.startswith(f"{package}_{version.replace(':', '%3a')}_")]  # apt writes an epoch as %3a
    return (exact or debs[-1:] or [None])[0]


def _download(package: str, version: str, where: Path, say) -> Path:
    """``apt-get download`` the listed version, else the archive's current one (the sha256 check decides)."""
    failures = []
    for spec in (f"{package}={version}", package):
        say(f"{package}: downloading {spec} from Debian's archive (apt-get download; not installed)")
        try:
            _run(["apt-get", "download", spec], f"apt-get download {spec}", cwd=where)
        except ArchiveUnavailable as exc:
            failures.append(str(exc))
            continue
        debs = sorted(where.glob(f"{package}_*.deb"))
        if debs:
            say(f"{package}: downloaded {debs[0].name} ({debs[0].stat().st_size / 1e6:.1f} MB)")
            return debs[0]
        failures.append(f"apt-get download {spec} left no .deb")
    raise ArchiveUnavailable("; ".join(failures))


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    """Run ``cmd`` with its progress on the terminal; a failure raises ArchiveUnavailable with its last error line."""
    try:
        done = subprocess.run(cmd, cwd=cwd, stdout=None, stderr=subprocess.PIPE, text=True, timeout=APT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArchiveUnavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        last = errors[-1] if errors else f"exit code {done.returncode}"
        if "Unable to locate package" in last:
            last += " (no package lists: run sudo apt-get update once)"
        raise ArchiveUnavailable(f"{what} failed: {last}")
    for line in done.stderr.splitlines():
        log.debug("%s: %s", cmd[0], line)


def _extract(deb: Path, files: list, cache: Path) -> dict:
    """The listed members of ``deb``, each checked against its sha256, into ``cache``."""
    by_member: dict[str, list] = {}
    for f in files:
        by_member.setdefault("./" + f.path.lstrip("/"), []).append(f)
    out = {}
    for member, data in _members(deb, set(by_member)):
        got = hashlib.sha256(data).hexdigest()
        for f in by_member.pop(member):
            if got != f.sha256:
                raise ChecksumMismatch(f"{f.package}: {f.path} in {deb.name} has sha256 {got}, the list says {f.sha256}")
            target = cached_path(cache, f)
            with atomic_open(target) as fh:
                fh.write(data)
            out[f] = target
    if by_member:
        raise ArchiveUnavailable(f"{deb.name} holds no {sorted(by_member)[0][1:]}")
    return out


def _members(deb: Path, names: set[str]):
    """(name, bytes) of each regular file in ``names`` in the package, reading no further than the last one."""
    left, read_to_end = set(names), False
    try:
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise ArchiveUnavailable(f"dpkg-deb --fsys-tarfile {deb.name}: {exc}") from None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for info in tar:
                name = info.name if info.name.startswith("./") else "./" + info.name
                if name not in left:
                    continue
                if not info.isfile():
                    raise ArchiveUnavailable(f"{deb.name}: {name[1:]} is not a regular file")
                left.discard(name)
                yield name, tar.extractfile(info).read()
                if not left:
                    break
            else:
                read_to_end = True
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveUnavailable(f"{deb.name} cannot be read ({exc})") from None
    finally:
        if not read_to_end and proc.poll() is None:
            proc.kill()  # the rest of the package is not needed (or reading it failed)
        _, err = proc.communicate()
    if left and proc.returncode:
        lines = err.decode(errors="replace").strip().splitlines() or [f"exit code {proc.returncode}"]
        raise ArchiveUnavailable(f"{deb.name} cannot be read (dpkg-deb: {lines[-1]})")
