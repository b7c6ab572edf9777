"""The fetcher of files from Debian's archive (edge_asc.archive), on packages built here with dpkg-deb.

The demo's real download is tested in tests/test_demo_audio.py and the dataset builder's in
tests/test_debian_ambient.py; here the kept-package paths run without the network.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_asc import archive
from edge_asc.archive import ArchiveUnavailable, ChecksumMismatch, cached_path, fetch

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None, reason="not a Debian system")
PACKAGE = "edge-asc-test-sounds"  # no such package in Debian's archive


@dataclass(frozen=True)
class Row:
    package: str
    version: str
    path: str
    sha256: str


def make_deb(where: Path, files: dict[str, bytes], version: str = "1.0-1") -> Path:
    """A real .deb of ``files`` (path in the package -> content), built with dpkg-deb."""
    root = where / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nMaintainer: edge-asc <test@example.org>\n"
        "Description: test package\n test package\n"
    )
    for path, data in files.items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_bytes(data)
    deb = where / f"{PACKAGE}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "--build", str(root), str(deb)], check=True, capture_output=True)
    shutil.rmtree(root)
    return deb


def rows_of(files: dict[str, bytes], version: str = "1.0-1") -> list[Row]:
    return [Row(PACKAGE, version, path, hashlib.sha256(data).hexdigest()) for path, data in files.items()]


FILES = {"/usr/share/sounds/a.ogg": b"first file", "/usr/share/sounds/deeper/b.wav": b"second file", "/usr/share/doc/x": b"other"}


def test_without_apt_get_a_fetch_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ArchiveUnavailable, match="apt-get is not available") as info:
        fetch(rows_of(FILES), tmp_path / "cache", say=lambda line: None)
    assert "\n" not in str(info.value)


@needs_dpkg
def test_a_kept_package_yields_only_the_listed_files_checked_and_cached_without_a_download(tmp_path):
    debs = tmp_path / "debs"
    debs.mkdir()
    make_deb(debs, FILES)
    stale = debs / f"{archive.PARTIAL_PREFIX}{PACKAGE}-killed"  # an interrupted download
    stale.mkdir()
    (stale / f"{PACKAGE}_1.0-1_all.deb").write_bytes(b"half")
    wanted = rows_of(FILES)[:2]
    said = []
    got = fetch(wanted, tmp_path / "cache", debs=debs, say=said.append)
    assert got.downloads == () and got.downloaded_bytes == 0
    assert got.paths == {r: cached_path(tmp_path / "cache", r) for r in wanted}
    assert [p.read_bytes() for p in got.paths.values()] == [b"first file", b"second file"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(p.name for p in got.paths.values())
    assert not stale.exists() and len(said) == 1 and "using the kept" in said[0]

    said.clear()
    assert fetch(wanted, tmp_path / "cache", debs=debs, say=said.append).paths == got.paths and said == []  # cached


@needs_dpkg
def test_a_file_whose_sha256_differs_is_refused_naming_the_package_the_path_and_both_sha256(tmp_path):
    deb = make_deb(tmp_path, FILES)
    row = rows_of(FILES)[0]
    listed = Row(row.package, row.version, row.path, "0" * 64)
    with pytest.raises(ChecksumMismatch) as info:
        archive._extract(deb, [listed], tmp_path / "cache")
    assert str(info.value) == f"{PACKAGE}: /usr/share/sounds/a.ogg in {deb.name} has sha256 {row.sha256}, the list says {'0' * 64}"
    assert not cached_path(tmp_path / "cache", listed).exists()


@needs_dpkg
def test_a_listed_file_the_package_lacks_is_named(tmp_path):
    deb = make_deb(tmp_path, FILES)
    with pytest.raises(ArchiveUnavailable, match=f"{deb.name} holds no /usr/share/sounds/missing.ogg"):
        archive._extract(deb, [Row(PACKAGE, "1.0-1", "/usr/share/sounds/missing.ogg", "0" * 64)], tmp_path / "cache")


@needs_dpkg
def test_a_kept_package_that_cannot_be_read_is_removed_and_downloaded_again(tmp_path):
    debs = tmp_path / "debs"
    debs.mkdir()
    broken = debs / f"{PACKAGE}_1.0-1_all.deb"
    broken.write_bytes(b"!<arch>\ntruncated")
    with pytest.raises(ArchiveUnavailable, match=f"apt-get download {PACKAGE}=1.0-1 failed") as info:
        fetch(rows_of(FILES)[:1], tmp_path / "cache", debs=debs, say=lambda line: None)
    assert "\n" not in str(info.value)
    assert not broken.exists()  # the next try starts from a fresh download
