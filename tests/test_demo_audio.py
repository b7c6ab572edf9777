"""The demo's audio list and its fetcher: a real ``apt-get download`` of the smallest listed package.

The download test runs where Debian's tools are (this project's CI and development machines are Debian);
it needs Debian's archive on the network, which is what the demo itself needs. The fetcher itself
(edge_asc.archive, shared with the dataset builder) is tested in tests/test_archive.py.
"""

from __future__ import annotations

import shutil

import pytest

from edge_asc import archive, demo_audio
from edge_asc.demo_audio import DemoAudioUnavailable, cached_path, fetch, load_places, load_sources, sha256_of

LABELS_13 = ("airplane_cabin", "boat", "cafe_restaurant", "campfire", "forest_birds", "night_crickets", "office", "rain",
             "river_stream", "seaside", "street_traffic", "train", "wind")  # fmt: skip
needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None, reason="not a Debian system")


def smallest_package_files() -> list[demo_audio.DemoFile]:
    files = load_sources()
    return [f for f in files if f.package == "minetest-data"]  # 3.6 MB, the smallest package listed


def test_the_list_names_package_version_path_label_licence_and_sha256_of_every_file():
    files = load_sources()
    assert len({f.package for f in files}) >= 2 and len({f.label for f in files}) >= 4
    for f in files:
        assert f.package and f.version and f.path.startswith("/usr/share/") and f.licence.strip() and f.origin.strip()
        assert f.label in LABELS_13
        assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0


def test_without_apt_get_the_fetch_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DemoAudioUnavailable, match="apt-get is not available") as info:
        fetch(smallest_package_files(), tmp_path / "cache", say=lambda line: None)
    assert "\n" not in str(info.value)


@needs_apt
def test_a_package_is_downloaded_checked_and_cached_then_a_corrupt_cached_file_is_fetched_again(tmp_path):
    files, cache, said = smallest_package_files(), tmp_path / "cache", []
    paths = fetch(files, cache, say=said.append)
    assert len(said) == 2 and all(line.startswith("demo: minetest-data: download") for line in said)  # before and after
    assert sorted(paths.values()) == sorted(cached_path(cache, f) for f in files)
    assert all(sha256_of(paths[f]) == f.sha256 for f in files)
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in paths.values())  # no .deb, no unpacked tree

    said.clear()
    assert fetch(files, cache, say=said.append) == paths and said == []  # cached: nothing downloaded

    victim = paths[files[0]]
    victim.write_bytes(b"not the file")
    assert fetch(files, cache, say=said.append) == paths and len(said) == 2
    assert sha256_of(victim) == files[0].sha256

    places = load_places(16000, files, cache, say=said.append)
    assert [p.label for p in places] == ["campfire", "river_stream"]
    assert places[0].audio.shape[0] / 16000 == pytest.approx(8.45 + 6.47, abs=0.1)


def test_the_demo_fetches_through_the_shared_archive_module_into_its_own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert demo_audio.default_cache_dir() == tmp_path / "edge-asc" / "demo"
    assert demo_audio.fetch is not archive.fetch and DemoAudioUnavailable is archive.ArchiveUnavailable
