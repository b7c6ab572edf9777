"""Dataset layouts, chunking, corrupt-file handling and leak-free splits, on small generated trees and on ambient13."""

from __future__ import annotations

import logging
import os
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_asc.dsp.audio_io import read_audio
from edge_asc.training.datasets import (
    Dataset,
    DatasetError,
    SceneFile,
    chunk_bounds,
    detect_layout,
    extract_segments,
    load_dataset,
    load_scene_audio,
    recording_from_name,
    recordings_on_both_sides,
)
from edge_asc.training.combine import load_datasets, unique_names
from edge_asc.training.splits import default_folds, official_folds, random_scene_split, split_by_recording
from edge_asc.dsp.features import FeatureConfig, FeatureExtractor

SR = 16000
SEG = FeatureConfig().segment_samples  # 4800
SHARED = next((p for p in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")) if p.is_dir()), Path("shared"))
AMBIENT13 = Path(os.environ.get("EDGE_ASC_AMBIENT13", SHARED / "data" / "ambient13"))
AMBIENT13_RECORDINGS = {
    "airplane_cabin": 2, "boat": 3, "cafe_restaurant": 6, "campfire": 3, "forest_birds": 5, "night_crickets": 4,
    "office": 3, "rain": 3, "river_stream": 3, "seaside": 3, "street_traffic": 7, "train": 4, "wind": 5,
}  # fmt: skip


def write_tone(path: Path, seconds: float, sr: int = SR, freq: float = 440.0, channels: int = 1, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    data = np.stack([mono * (0.5 + 0.5 * c) for c in range(channels)], axis=1) if channels > 1 else mono
    sf.write(str(path), data.astype(np.float32), sr, **kw)
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    return path


def write_empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_nan(path: Path, seconds: float = 1.0) -> Path:
    """A well-formed float WAV whose samples are NaN: the header reads, decoding must refuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full(int(seconds * SR), np.nan, dtype=np.float32)
    sf.write(str(path), data, SR, subtype="FLOAT")
    return path


# --- chunking --------------------------------------------------------------------------------------


def test_chunk_bounds_keep_remainders_of_at_least_one_segment():
    chunk = 10 * SR
    assert chunk_bounds(25 * SR, chunk, SEG) == [(0, chunk), (chunk, 2 * chunk), (2 * chunk, 25 * SR)]
    assert chunk_bounds(2 * chunk + SEG, chunk, SEG)[-1] == (2 * chunk, 2 * chunk + SEG)  # exactly one segment: kept
    assert chunk_bounds(2 * chunk + SEG - 1, chunk, SEG) == [(0, chunk), (chunk, 2 * chunk)]  # one sample short: dropped
    assert chunk_bounds(SEG - 1, chunk, SEG) == []
    assert chunk_bounds(25 * SR, None, SEG) == [(0, 25 * SR)]


# --- folder layout ---------------------------------------------------------------------------------


@pytest.fixture
def folder_tree(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    write_tone(root / "beach" / "b1.wav", 2.0, freq=300)
    write_tone(root / "beach" / "sub" / "b2.flac", 1.5, sr=44100, channels=2, freq=350)  # stereo 44.1 kHz, nested
    write_tone(root / "bus" / "long.wav", 25.0, freq=900)  # three chunks: 10 + 10 + 5 s
    write_tone(root / "bus" / "tiny.wav", 0.2)  # shorter than a segment
    write_corrupt(root / "bus" / "corrupt.wav")
    write_empty(root / "bus" / "empty.wav")
    (root / "bus" / "notes.txt").write_text("not audio")
    return root


def test_a_folder_layout_takes_labels_from_folders_chunks_long_files_and_skips_unreadable_ones_by_name(folder_tree: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="edge_asc.training.datasets"):
        ds = load_dataset(folder_tree)
    assert ds.layout == "folder"
    assert ds.labels == ("beach", "bus")
    ids = [s.scene_id for s in ds.scenes]
    assert ids == ["beach/b1.wav", "beach/sub/b2.flac", "bus/long.wav#0", "bus/long.wav#1", "bus/long.wav#2"]
    long = [s for s in ds.scenes if s.path.name == "long.wav"]
    assert [(s.start_s, s.duration_s) for s in long] == [(0.0, 10.0), (10.0, 10.0), (20.0, 5.0)]
    assert {s.recording_id for s in long} == {"bus/long.wav"}  # no metadata: the file is the recording
    b2 = ds.scenes[1]
    assert b2.duration_s == pytest.approx(1.5, abs=1 / SR)  # measured at the model rate, not 44.1 kHz
    skipped = {p.name: reason for p, reason in ds.skipped}
    assert set(skipped) == {"tiny.wav", "corrupt.wav", "empty.wav"}
    assert "shorter than one segment" in skipped["tiny.wav"]
    for name in ("corrupt.wav", "empty.wav", "tiny.wav"):  # each one reported by name
        assert any(name in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert ds.folds is None
    with pytest.raises(DatasetError, match="no official folds"):
        official_folds(ds)


def test_a_folder_layout_with_a_metadata_file_groups_files_by_its_recordings(tmp_path: Path):
    root = tmp_path / "meta"
    write_tone(root / "rain" / "r1a.flac", 1.0)
    write_tone(root / "rain" / "r1b.flac", 1.0)  # same recording as r1a
    write_tone(root / "rain" / "r2.flac", 1.0)
    write_tone(root / "wind" / "w1.flac", 1.0)
    write_tone(root / "wind" / "unlisted.flac", 1.0)  # on disk, not in metadata: ignored
    (root / "metadata.csv").write_text(
        "path,label,recording_id,license\n"
        'rain/r1a.flac,rain,rec-1,"CC0, see source"\n'
        'rain/r1b.flac,rain,rec-1,"CC0, see source"\n'
        "rain/r2.flac,rain,rec-2,CC0\n"
        "wind/w1.flac,wind,,CC0\n"  # empty recording id: the file is its own recording
        "wind/gone.flac,wind,rec-9,CC0\n"  # listed, missing on disk: skipped
    )
    ds = load_dataset(root)
    assert [s.recording_id for s in ds.scenes] == ["rec-1", "rec-1", "rec-2", "wind/w1.flac"]
    assert ds.recording_ids == ("rec-1", "rec-2", "wind/w1.flac")
    assert ds.scene_recordings().tolist() == [0, 0, 1, 2]
    assert ds.scene_labels().tolist() == [0, 0, 0, 1]
    assert [p.name for p, _ in ds.skipped] == ["gone.flac"]
    assert all(s.path.name != "unlisted.flac" for s in ds.scenes)


def test_a_metadata_file_missing_a_column_is_refused_naming_the_file(tmp_path: Path):
    root = tmp_path / "bad"
    write_tone(root / "rain" / "r.flac", 1.0)
    (root / "metadata.csv").write_text("file,label\nrain/r.flac,rain\n")
    with pytest.raises(DatasetError, match=r"metadata\.csv: missing column 'path'"):
        load_dataset(root)


def test_a_folder_with_nothing_readable_is_an_error(tmp_path: Path):
    write_corrupt(tmp_path / "x" / "a" / "c.wav")
    with pytest.raises(DatasetError, match="no usable audio"):
        load_dataset(tmp_path / "x")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        load_dataset(tmp_path / "x", layout="dcase2030")


# --- DCASE 2016/2017 ------------------------------------------------------------------------------


def make_dcase2016(root: Path, identifier_column: bool = False) -> Path:
    """TUT Acoustic Scenes 2016/2017 development layout: audio/, meta.txt, evaluation_setup/foldN_*.txt."""
    files = {  # recording -> label; two 1 s segments per recording, named <rec>_<start>_<end>.wav
        "a001": "residential_area", "a002": "residential_area", "b001": "cafe/restaurant", "b002": "cafe/restaurant",
    }  # fmt: skip
    meta, names = [], {}
    for rec, label in files.items():
        names[rec] = []
        for start in (0, 10):
            name = f"audio/{rec}_{start}_{start + 10}.wav"
            write_tone(root / name, 1.0, sr=44100, channels=2, freq=200 + 50 * len(meta))
            meta.append(f"{name}\t{label}" + (f"\t{rec}" if identifier_column else ""))
            names[rec].append((name, label))
    (root / "meta.txt").write_text("\n".join(meta) + "\n")
    setup = root / "evaluation_setup"
    setup.mkdir()
    for k, test_recs in enumerate((("a001", "b001"), ("a002", "b002")), start=1):
        train = [f"{n}\t{lab}" for rec in files if rec not in test_recs for n, lab in names[rec]]
        test = [f"{n}\t{lab}" for rec in test_recs for n, lab in names[rec]]
        (setup / f"fold{k}_train.txt").write_text("\n".join(train) + "\n")
        (setup / f"fold{k}_evaluate.txt").write_text("\n".join(test) + "\n")
        (setup / f"fold{k}_test.txt").write_text("\n".join(t.split("\t")[0] for t in test) + "\n")
    return root


@pytest.mark.parametrize("identifier_column", [False, True], ids=["dcase2016", "dcase2017"])
def test_a_dcase2016_layout_is_detected_with_its_recordings_and_leak_free_official_folds(tmp_path: Path, identifier_column: bool):
    root = make_dcase2016(tmp_path / "tut", identifier_column)
    assert detect_layout(root) == "dcase2016"
    ds = load_dataset(root)
    assert ds.layout == "dcase2016"
    assert ds.labels == ("cafe/restaurant", "residential_area")
    assert len(ds.scenes) == 8 and not ds.skipped
    assert [s.recording_id for s in ds.scenes[:2]] == ["a001", "a001"]
    assert ds.scenes[0].scene_id == "audio/a001_0_10.wav"
    folds = official_folds(ds)
    assert [f.name for f in folds] == ["fold1", "fold2"]
    for fold in folds:
        assert not fold.leaky
        assert recordings_on_both_sides(ds, fold) == []
        assert sorted(np.concatenate([fold.train, fold.test]).tolist()) == list(range(8))
    assert {ds.scenes[i].recording_id for i in folds[0].test} == {"a001", "b001"}
    assert default_folds(ds) is ds.folds


def test_a_dcase_file_name_gives_its_recording_as_the_part_before_the_times():
    assert recording_from_name("audio/a001_10_20.wav") == "a001"
    assert recording_from_name("b020_90_100.wav") == "b020"
    assert recording_from_name("some_file.wav") == "some_file"


# --- DCASE 2018+ ----------------------------------------------------------------------------------


def make_dcase2018(root: Path) -> Path:
    """TUT/TAU Urban Acoustic Scenes 2018+ development layout: tab-separated meta.csv with a header."""
    rows = []
    for scene, city, loc in (("airport", "barcelona", 0), ("airport", "helsinki", 1), ("bus", "barcelona", 2), ("bus", "lyon", 3)):
        for seg in range(2):
            name = f"audio/{scene}-{city}-{loc}-{seg}-a.wav"
            write_tone(root / name, 1.0, sr=48000, freq=300 + 100 * loc)
            rows.append((name, scene, f"{city}-{loc}", "a"))
    lines = ["filename\tscene_label\tidentifier\tsource_label"] + ["\t".join(r) for r in rows]
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    setup = root / "evaluation_setup"
    setup.mkdir()
    test_ids = {"barcelona-0", "barcelona-2"}
    train = [f"{r[0]}\t{r[1]}" for r in rows if r[2] not in test_ids]
    test = [f"{r[0]}\t{r[1]}" for r in rows if r[2] in test_ids]
    (setup / "fold1_train.csv").write_text("filename\tscene_label\n" + "\n".join(train) + "\n")
    (setup / "fold1_evaluate.csv").write_text("filename\tscene_label\n" + "\n".join(test) + "\n")
    return root


def test_a_dcase2018_layout_is_detected_with_its_recordings_and_its_official_fold_without_the_corrupt_file(tmp_path: Path):
    root = make_dcase2018(tmp_path / "tau")
    write_corrupt(root / "audio" / "bus-lyon-3-1-a.wav")  # overwrite one listed file with junk
    assert detect_layout(root) == "dcase2018"
    ds = load_dataset(root)
    assert ds.layout == "dcase2018"
    assert ds.labels == ("airport", "bus")
    assert len(ds.scenes) == 7
    assert [p.name for p, _ in ds.skipped] == ["bus-lyon-3-1-a.wav"]
    assert ds.recording_ids == ("barcelona-0", "barcelona-2", "helsinki-1", "lyon-3")
    (fold,) = official_folds(ds)
    assert fold.name == "fold1" and not fold.leaky
    assert {ds.scenes[i].recording_id for i in fold.test} == {"barcelona-0", "barcelona-2"}
    assert len(fold.train) == 3  # the corrupt file's scene is gone from the train side
    assert recordings_on_both_sides(ds, fold) == []


def test_a_dcase2018_official_fold_with_a_recording_on_both_sides_is_flagged_leaky(tmp_path: Path):
    root = make_dcase2018(tmp_path / "tau")
    ev = root / "evaluation_setup" / "fold1_evaluate.csv"
    ev.write_text(ev.read_text() + "audio/airport-helsinki-1-0-a.wav\tairport\n")  # a training recording in test
    (fold,) = official_folds(load_dataset(root))
    assert fold.leaky


# --- audio, features ------------------------------------------------------------------------------


def test_scene_audio_and_segments_are_each_chunk_read_as_its_own_stream(folder_tree: Path):
    ds = load_dataset(folder_tree)
    audio = load_scene_audio(ds)
    assert [a.shape[0] for a in audio] == [int(round(s.duration_s * SR)) for s in ds.scenes]
    assert all(a.dtype == np.float32 and a.ndim == 1 for a in audio)
    long_audio = read_audio(folder_tree / "bus" / "long.wav", SR)
    np.testing.assert_array_equal(audio[3], long_audio[10 * SR : 20 * SR])
    stereo = read_audio(folder_tree / "beach" / "sub" / "b2.flac", SR)
    np.testing.assert_array_equal(audio[1], stereo)

    fx = FeatureExtractor()
    segs = extract_segments(ds, fx, audio=audio)
    per_scene = [int(round(s.duration_s * SR)) // SEG for s in ds.scenes]  # 6, 5, 33, 33, 16
    assert segs.features.shape == (sum(per_scene), 20, 52) and segs.features.dtype == np.float32
    assert np.bincount(segs.scene).tolist() == per_scene
    assert segs.position[segs.scene == 2].tolist() == list(range(33))
    assert segs.labels.tolist() == [0] * 11 + [1] * 82
    assert segs.label_names == ds.labels
    assert [segs.recording_ids[r] for r in segs.recording[[0, 6, 11]]] == [s.recording_id for s in ds.scenes[:3]]
    # each chunk is its own stream (zeros before it), exactly like a file handed to the daemon ...
    chunk1 = segs.features[segs.scene == 3]
    np.testing.assert_array_equal(chunk1, fx.signal_features(long_audio[10 * SR : 20 * SR]))
    # ... so its first segment differs from the same audio seen mid-stream
    assert not np.array_equal(chunk1[0], fx.signal_features(long_audio[: 10 * SR + SEG])[-1])
    # reading files itself gives the same result as the preloaded audio
    again = extract_segments(ds, fx, scene_indices=[3, 0])
    np.testing.assert_array_equal(again.features, np.concatenate([chunk1, segs.features[segs.scene == 0]]))
    assert again.of_scenes([0]).position.tolist() == list(range(6))


def test_a_file_that_fails_to_decode_mid_run_is_skipped_and_reported_once(tmp_path: Path, caplog):
    root = tmp_path / "nan"
    write_tone(root / "a" / "ok.wav", 1.0)
    write_nan(root / "a" / "nan.wav")  # header fine: passes loading, fails when decoded
    write_tone(root / "b" / "ok2.wav", 1.0)
    ds = load_dataset(root)
    assert len(ds.scenes) == 3 and not ds.skipped
    with caplog.at_level(logging.WARNING, logger="edge_asc.training.datasets"):
        segs = extract_segments(ds, FeatureExtractor())
    assert [p.name for p, _ in ds.skipped] == ["nan.wav"]
    assert "NaN" in ds.skipped[0][1]
    assert any("nan.wav" in r.getMessage() for r in caplog.records)
    assert any("1 files could not be decoded" in r.getMessage() for r in caplog.records)
    nan_scene = next(i for i, s in enumerate(ds.scenes) if s.path.name == "nan.wav")
    assert nan_scene not in segs.scene and len(segs) == 2 * (SR // SEG)
    assert load_scene_audio(ds)[nan_scene].shape == (0,)
    assert len(ds.skipped) == 1  # reported once, not once per read


def test_an_extractor_at_another_sample_rate_than_the_dataset_is_refused(folder_tree: Path):
    ds = load_dataset(folder_tree, sample_rate=8000)
    with pytest.raises(ValueError, match="8000 Hz"):
        extract_segments(ds, FeatureExtractor())


# --- splits ---------------------------------------------------------------------------------------


def synthetic_dataset(recordings_per_class: dict[str, int], scenes_per_recording: int = 3) -> Dataset:
    scenes = []
    for label, n_rec in recordings_per_class.items():
        for r in range(n_rec):
            for k in range(scenes_per_recording):
                path = Path(f"/nowhere/{label}/{r}.wav")
                scenes.append(SceneFile(path, label, f"{label}/{r}.wav#{k}", f"{label}-{r}", 10.0 * k, 10.0))
    return Dataset(Path("/nowhere"), "folder", tuple(sorted(recordings_per_class)), scenes)


def test_split_by_recording_keeps_each_recording_on_one_side_and_stratifies_by_class():
    ds = synthetic_dataset({"a": 7, "b": 3, "c": 6, "rare": 1, "pair": 2})
    folds = split_by_recording(ds, n_folds=3, seed=4)
    assert len(folds) == 3
    test_count = Counter()
    for fold in folds:
        assert not fold.leaky
        assert recordings_on_both_sides(ds, fold) == []
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert sorted(np.concatenate([fold.train, fold.test]).tolist()) == list(range(len(ds.scenes)))
        test_count.update(ds.scenes[i].recording_id for i in fold.test)
        per_class = Counter(ds.scenes[i].label for i in fold.test)
        assert 2 * 3 <= per_class["a"] <= 3 * 3  # 7 recordings over 3 folds: 2 or 3 each
        assert per_class["b"] == 3 and per_class["c"] == 2 * 3  # one and two recordings each
    assert set(test_count) == set(ds.recording_ids)
    assert all(v == 3 for v in test_count.values())  # each recording's 3 scenes on exactly one test side
    assert sum("rare-0" in {ds.scenes[i].recording_id for i in f.test} for f in folds) == 1
    # seeded: same seed same folds, another seed (usually) other folds
    again = split_by_recording(ds, n_folds=3, seed=4)
    assert all(np.array_equal(f.test, g.test) for f, g in zip(folds, again))
    others = [split_by_recording(ds, n_folds=3, seed=s) for s in range(5, 10)]
    assert any(not np.array_equal(o[0].test, folds[0].test) for o in others)


def test_split_by_recording_refuses_more_folds_than_recordings_or_fewer_than_two():
    ds = synthetic_dataset({"a": 1, "b": 1})
    with pytest.raises(ValueError, match="from 2 recordings"):
        split_by_recording(ds, n_folds=3)
    with pytest.raises(ValueError, match="at least 2"):
        split_by_recording(ds, n_folds=1)
    assert len(split_by_recording(ds, n_folds=2)) == 2


def test_a_random_scene_split_is_flagged_leaky_and_puts_recordings_on_both_sides():
    ds = synthetic_dataset({"a": 4, "b": 4}, scenes_per_recording=5)
    fold = random_scene_split(ds, test_fraction=0.2, seed=1)
    assert fold.leaky and "leaky" in fold.name
    assert len(fold.test) == 8 and len(fold.train) == 32
    assert np.intersect1d(fold.train, fold.test).size == 0
    assert recordings_on_both_sides(ds, fold)  # the leak the grouped split avoids
    with pytest.raises(ValueError):
        random_scene_split(ds, test_fraction=1.0)


# --- the real data ----------------------------------------------------------------------------------


@pytest.mark.skipif(not AMBIENT13.is_dir(), reason=f"ambient13 not found at {AMBIENT13} (set EDGE_ASC_AMBIENT13)")
def test_ambient13_reads_as_its_51_recordings_and_splits_by_recording_without_leaks():
    ds = load_dataset(AMBIENT13)
    assert ds.layout == "folder" and not ds.skipped
    assert len({s.path for s in ds.scenes}) == 51
    assert ds.labels == tuple(sorted(AMBIENT13_RECORDINGS))
    assert len(ds.recording_ids) == 51
    per_class = Counter(ds.scenes[i].label for i in {s.recording_id: i for i, s in enumerate(ds.scenes)}.values())
    assert dict(per_class) == AMBIENT13_RECORDINGS
    assert all(s.duration_s <= 10.0 for s in ds.scenes)
    assert 60 < sum(s.duration_s for s in ds.scenes) / 60 < 70  # about 65 minutes
    folds = split_by_recording(ds, n_folds=3, seed=0)
    for fold in folds:
        assert recordings_on_both_sides(ds, fold) == []
    assert recordings_on_both_sides(ds, random_scene_split(ds))  # ambience loops: a random split leaks


def test_a_dcase_meta_line_without_a_label_is_an_error_naming_the_line(tmp_path: Path):
    root = tmp_path / "tut"
    write_tone(root / "audio" / "a001_0_10.wav", 1.0)
    (root / "meta.txt").write_text("audio/a001_0_10.wav\n")
    with pytest.raises(DatasetError, match=r"meta\.txt, line 1"):
        load_dataset(root)
    (root / "meta.txt").write_text("audio/a001_0_10.wav beach\n")  # whitespace instead of a tab is accepted
    ds = load_dataset(root, layout="dcase2016")
    assert ds.labels == ("beach",) and ds.scenes[0].recording_id == "a001"


def test_with_chunking_off_each_file_is_one_scene_and_a_chunk_under_a_segment_is_refused(folder_tree: Path):
    ds = load_dataset(folder_tree, chunk_seconds=None)
    long = [s for s in ds.scenes if s.path.name == "long.wav"]
    assert [(s.scene_id, s.duration_s) for s in long] == [("bus/long.wav", 25.0)]
    with pytest.raises(DatasetError, match="at least one segment"):
        load_dataset(folder_tree, chunk_seconds=0.1)


def test_several_datasets_combine_into_one_with_sources_and_recording_ids_kept_apart(tmp_path: Path):
    for name, labels in (("alpha", ("rain", "wind")), ("beta", ("rain", "office"))):
        for label in labels:
            write_tone(tmp_path / name / label / "take.wav", 2.0)
    combined = load_datasets([tmp_path / "alpha", tmp_path / "beta"])
    assert combined.labels == ("office", "rain", "wind") and combined.source_names == ("alpha", "beta")
    assert sorted(combined.recording_ids) == ["alpha/rain/take.wav", "alpha/wind/take.wav", "beta/office/take.wav", "beta/rain/take.wav"]
    assert list(combined.scene_sources()) == [0, 0, 1, 1]
    assert load_datasets([tmp_path / "alpha"]).recording_ids == ("rain/take.wav", "wind/take.wav")  # one dataset: unchanged
    with pytest.raises(DatasetError, match="given twice"):
        load_datasets([tmp_path / "alpha", tmp_path / "alpha"])


def test_two_folders_with_the_same_name_get_distinct_source_names():
    assert unique_names(["data", "data", "other", "data"]) == ["data", "data-2", "other", "data-3"]
