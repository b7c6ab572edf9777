"""The debian-ambient dataset: the committed list, and a real build of its smallest package's files.

The build test lists minetest-data's six files (3.6 MB, the smallest package in ../shared's manifest; the
committed list leaves them out because the demo plays them, hence tests/fixtures/debian_minetest.csv and
--manifest). It needs apt-get and Debian's archive on the network, and is skipped, saying so, without them.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED

from edge_asc import archive, debian_ambient
from edge_asc.cli import main
from edge_asc.debian_ambient import BuildError, build, load_manifest
from edge_asc.demo_audio import load_sources
from edge_asc.training.datasets import load_dataset

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "debian_minetest.csv"
SHARED_MANIFEST = SHARED / "data" / "debian-ambient" / "manifest.csv"
AMBIENT13_COLUMNS = ("path", "label", "recording_id", "duration_s", "source", "origin_path", "license")
LABELS_13 = ("airplane_cabin", "boat", "cafe_restaurant", "campfire", "forest_birds", "night_crickets", "office", "rain",
             "river_stream", "seaside", "street_traffic", "train", "wind")  # fmt: skip
LEFT_OUT = {  # path in the package -> why
    "/usr/share/games/flare/mods/fantasycore/soundfx/environment/open_fire.ogg": "copies ambient13 campfire",
    "/usr/share/games/megaglest/tilesets/dark_forest/sounds/night.ogg": "copy_of set (ambient13 boat)",
    "/usr/share/games/redeclipse/data/sounds/ambience/morph/stormbolts.ogg": "copies held-out audio",
    "/usr/share/games/ardentryst/Sounds/fire_loop.ogg": "the same recording as the demo's minetest fire_small",
    "/usr/share/games/megaglest/tilesets/winter_forest/sounds/wind.ogg": "the same audio as winter/sounds/wind.ogg",
}


def test_the_committed_list_leaves_out_the_demos_files_their_recordings_and_the_copies():
    files = load_manifest()
    paths = {f.path for f in files}
    demo = load_sources()
    assert not paths & {d.path for d in demo}
    assert not paths & set(LEFT_OUT)
    assert not {f.package for f in files} & {"minetest-data", "gnome-shell-pomodoro-data"}
    assert not [f for f in files if "minetest" in f.recording_group or "ardentryst fire" in f.recording_group]
    assert {f.label for f in files} <= set(LABELS_13)
    assert all(f.recording_id.startswith("debian:") and f.licence and f.origin for f in files)
    assert len(files) == 54 and len({f.recording_group for f in files}) == 49


@pytest.mark.skipif(not SHARED_MANIFEST.is_file(), reason="../shared/data/debian-ambient/manifest.csv is not beside the clone")
def test_every_listed_file_is_the_shared_manifests_row_with_its_sha256_label_and_recording_group():
    with SHARED_MANIFEST.open(encoding="utf-8", newline="") as fh:
        shared = {r["path_in_package"]: r for r in csv.DictReader(fh)}
    for f in load_manifest():
        row = shared[f.path]
        assert (row["package"], row["version"], row["sha256_of_file_in_package"], row["label"], row["recording_group"], row["licence"]) == (
            f.package, f.version, f.sha256, f.label, f.recording_group, f.licence)  # fmt: skip
        assert not row["copy_of"].strip()


def test_a_list_without_a_column_is_refused_naming_it(tmp_path):
    bad = tmp_path / "list.csv"
    bad.write_text(FIXTURE.read_text().replace("recording_group", "group"))
    with pytest.raises(BuildError, match=f"{bad}: missing column 'recording_group'"):
        load_manifest(bad)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture list built once into a fresh cache; skipped when Debian's archive cannot be reached."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("not a Debian system: apt-get and dpkg-deb are needed")
    root = tmp_path_factory.mktemp("debian")
    try:
        report = build(load_manifest(FIXTURE), root / "out", root / "cache", say=lambda line: None)
    except archive.ChecksumMismatch:
        raise
    except archive.ArchiveUnavailable as exc:
        pytest.skip(f"Debian's archive cannot be reached: {exc}")
    return report, root / "cache"


def test_a_build_writes_16_khz_mono_flac_and_metadata_that_the_trainer_reads_as_ambient13(built):
    report, _ = built
    out = report.out
    assert [name for name, _ in report.downloads] == ["minetest-data_5.6.1+dfsg+~1.9.0mt8+dfsg-2_all.deb"]
    assert 3.0e6 < report.downloads[0][1] < 4.0e6
    with open(out / "metadata.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0])[: len(AMBIENT13_COLUMNS)] == AMBIENT13_COLUMNS
    listed = {f.rel: f for f in load_manifest(FIXTURE)}
    assert sorted(r["path"] for r in rows) == sorted(listed)
    for r in rows:
        info = sf.info(str(out / r["path"]))
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
        assert info.frames / 16000 == pytest.approx(listed[r["path"]].seconds, abs=0.02) == float(r["duration_s"])
        assert r["source"] == "minetest-data=5.6.1+dfsg+~1.9.0mt8+dfsg-2" and r["license"] and r["origin_path"].endswith(".ogg")
    dataset = load_dataset(out)
    assert dataset.labels == ("campfire", "river_stream")
    assert dataset.recording_ids == ("debian:minetest-data:/usr/share/games/minetest/games/minetest_game/mods/fire/sounds/fire_large.ogg",
                                     "debian:minetest:freesound-197023",
                                     "debian:same-audio:minetest fire_small = ardentryst fire_loop (w4 0.79, env 0.94 between them)")  # fmt: skip
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no partial folder left


def test_a_second_run_downloads_nothing_and_a_changed_file_alone_is_rebuilt(built, capsys):
    report, cache = built
    assert main(["data", "debian", "--out", str(report.out), "--manifest", str(FIXTURE), "--cache-dir", str(cache)]) == 0
    assert "already up to date" in capsys.readouterr().out
    victim = report.out / report.files[0].path
    victim.write_bytes(b"damaged")
    assert main(["data", "debian", "--out", str(report.out), "--manifest", str(FIXTURE), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "5 kept from an earlier build" in out and "downloaded 0.0 MB in 0 packages" in out
    assert archive.sha256_of(victim) == report.files[0].sha256


def test_a_new_folder_is_built_from_the_kept_package_without_a_download(built, tmp_path):
    report, cache = built
    shutil.copytree(cache / "debs", tmp_path / "debs")  # the package, not the files taken from it
    again = build(load_manifest(FIXTURE), tmp_path / "out", tmp_path, say=lambda line: None)
    assert again.downloads == () and again.reused == 0
    assert [b.sha256 for b in again.files] == [b.sha256 for b in report.files]  # the same bytes


def test_an_interrupted_build_keeps_its_finished_files_and_the_folder_appears_only_when_complete(built, tmp_path):
    report, cache = built
    files, out = load_manifest(FIXTURE), tmp_path / "out"

    def killed_after_two(line: str) -> None:
        if line.startswith("decoded [2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(files, out, cache, say=killed_after_two)
    assert not out.exists() and len(list(debian_ambient.partial_dir(out).rglob("*.flac"))) == 2
    again = build(files, out, cache, say=lambda line: None)
    assert again.reused == 2 and [b.sha256 for b in again.files] == [b.sha256 for b in report.files]
    assert not debian_ambient.partial_dir(out).exists()


def test_a_listed_sha256_the_package_does_not_match_is_refused_naming_package_path_and_both_sha256(built, tmp_path, capsys):
    _, cache = built
    f = load_manifest(FIXTURE)[0]
    tampered = tmp_path / "list.csv"
    tampered.write_text(FIXTURE.read_text().replace(f.sha256, "0" * 64))
    rc = main(["data", "debian", "--out", str(tmp_path / "out"), "--manifest", str(tampered), "--cache-dir", str(cache)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert rc == 3 and len(err) == 1
    assert f"sha256 mismatch: minetest-data: {f.path} in minetest-data_5.6.1+dfsg+~1.9.0mt8+dfsg-2_all.deb has sha256 {f.sha256}, the list says {'0' * 64}" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_file_that_decodes_over_full_scale_is_scaled_down_to_fit_not_clipped(tmp_path):
    t = np.arange(16000 * 2) / 16000
    hot = (3.0 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # as a hot Vorbis file decodes
    sf.write(str(tmp_path / "hot.wav"), hot, 16000, subtype="FLOAT")
    f = dataclasses.replace(load_manifest(FIXTURE)[0], seconds=2.0)
    row = debian_ambient._decode(f, tmp_path / "hot.wav", tmp_path / "work")
    written, rate = sf.read(str(tmp_path / "work" / f.rel), dtype="float32")
    assert rate == 16000 and float(row.gain_db) == pytest.approx(-20 * np.log10(3.0), abs=0.02)
    assert np.abs(written).max() == pytest.approx(1.0, abs=1e-3)
    assert np.abs(written - hot / 3.0).max() < 1e-3  # the same waveform, 9.5 dB lower
