"""The feature cache (training/feature_cache.py) and the extraction into it (training/extract.py, batches.SceneSource)."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from edge_asc.dsp.audio_io import iter_audio, read_audio
from edge_asc.dsp.features import FeatureExtractor
from edge_asc.training import feature_cache
from edge_asc.training.batches import SceneRef, SceneSource, SegmentStore
from edge_asc.training.config import AugmentConfig
from edge_asc.training.datasets import extract_segments, load_dataset
from edge_asc.training.extract import ExtractionError, Job, cached_segments, run_jobs
from edge_asc.training.feature_cache import CACHE_ENV, FeatureCache, clean_key, draw_key
from training.generated import SR, generated_scenes, tiny_config


@pytest.fixture()
def flac_scenes(tmp_path):
    """Six 1 s generated scenes (3 classes x 2 recordings) written to FLAC: (refs, labels, recordings)."""
    audio, labels, recs = generated_scenes(2, 1.0, seed=3)
    refs = []
    for i, x in enumerate(audio):
        path = tmp_path / "audio" / f"scene{i}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, x, SR)
        refs.append(SceneRef.from_file(path, 0, x.shape[0]))
    return refs, labels, recs


def _source(flac_scenes, cache, workers=1, **config):
    refs, labels, recs = flac_scenes
    return SceneSource(tiny_config(**config), refs, labels, recs, cache, workers)


def _files(cache):
    return sorted(cache.directory.glob("??/*.npy"))


def test_a_second_source_reads_every_entry_from_the_cache_without_extracting(flac_scenes, tmp_path, monkeypatch):
    cache = FeatureCache.open(tmp_path / "cache")
    first = _source(flac_scenes, cache)
    first.prepare(range(2))
    assert len(_files(cache)) == 6 * 3  # clean + 2 draws per scene
    calls = []
    monkeypatch.setattr("edge_asc.training.extract.Worker.compute", lambda self, job: calls.append(job) or 1 / 0)
    again = _source(flac_scenes, FeatureCache.open(tmp_path / "cache"))
    x, y = again.epoch(1)
    assert calls == [] and np.array_equal(np.asarray(x), np.asarray(first.epoch(1)[0])) and np.array_equal(y, first.epoch(1)[1])
    assert np.array_equal(np.asarray(again.clean()[0]), np.asarray(first.clean()[0]))


def test_a_missing_draw_is_computed_on_demand_and_stored(flac_scenes, tmp_path):
    cache = FeatureCache.open(tmp_path / "cache")
    source = _source(flac_scenes, cache)
    source.prepare(range(1))
    before = len(_files(cache))
    x, y = source.epoch(3)
    assert len(_files(cache)) == before + 6 and x.shape[0] == y.shape[0] > 0


def test_the_key_changes_with_the_audio_bytes_the_feature_and_augment_settings_and_the_seed(flac_scenes, tmp_path):
    refs, _, _ = flac_scenes
    fc, aug = tiny_config().features, tiny_config().augment
    base = draw_key(refs[0].key, refs[1].key, fc, aug, 0, 0)
    changed_audio = sf.read(refs[0].path, dtype="float32")[0] * 0.5
    sf.write(refs[0].path, changed_audio, SR)
    rewritten = SceneRef.from_file(refs[0].path, refs[0].start, refs[0].stop)
    others = [
        draw_key(rewritten.key, refs[1].key, fc, aug, 0, 0),  # the audio's bytes
        draw_key(refs[0].key, refs[1].key, dataclasses.replace(fc, n_mels=fc.n_mels - 1), aug, 0, 0),  # feature settings
        draw_key(refs[0].key, refs[1].key, fc, dataclasses.replace(aug, gain_db=1.0), 0, 0),  # augment settings
        draw_key(refs[0].key, refs[1].key, fc, aug, 1, 0),  # the seed
        draw_key(refs[0].key, refs[1].key, fc, aug, 0, 1),  # the draw
        draw_key(refs[0].key, refs[2].key, fc, aug, 0, 0),  # the partner
        clean_key(refs[0].key, fc),  # clean features are another entry
    ]
    assert rewritten.key != refs[0].key and len({base, *others}) == 1 + len(others)


def test_a_changed_seed_or_augment_setting_recomputes_the_draws_but_reuses_the_clean_features(flac_scenes, tmp_path):
    cache = FeatureCache.open(tmp_path / "cache")
    _source(flac_scenes, cache).prepare(range(1))
    n = len(_files(cache))
    _source(flac_scenes, cache, seed=5).prepare(range(1))
    assert len(_files(cache)) == n + 6
    _source(flac_scenes, cache, augment=AugmentConfig(gain_db=1.0)).prepare(range(1))
    assert len(_files(cache)) == n + 12


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_a_corrupt_entry_is_detected_logged_once_and_rebuilt(flac_scenes, tmp_path, caplog, damage):
    cache = FeatureCache.open(tmp_path / "cache")
    source = _source(flac_scenes, cache)
    good = np.asarray(source.epoch(0)[0])
    path = cache.path(source._draw_jobs(0)[2].key)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 100]
    else:
        data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    fresh = FeatureCache.open(tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="edge_asc.training.feature_cache"):
        assert fresh.get(source._draw_jobs(0)[2].key) is None
        assert fresh.get(source._draw_jobs(0)[2].key) is None
        rebuilt = _source(flac_scenes, fresh).epoch(0)[0]
    assert np.array_equal(np.asarray(rebuilt), good)
    assert sum("corrupt entry" in r.message for r in caplog.records) == 1


def test_two_workers_give_exactly_the_serial_clean_and_augmented_features(flac_scenes, tmp_path):
    serial = _source(flac_scenes, FeatureCache.open(tmp_path / "serial"), workers=1)
    parallel = _source(flac_scenes, FeatureCache.open(tmp_path / "parallel"), workers=2)
    serial.prepare(range(2))
    parallel.prepare(range(2))
    assert np.array_equal(np.asarray(serial.clean()[0]), np.asarray(parallel.clean()[0]))
    for e in range(2):
        (xs, ys), (xp, yp) = serial.epoch(e), parallel.epoch(e)
        assert np.array_equal(np.asarray(xs), np.asarray(xp)) and np.array_equal(ys, yp)
    in_memory = _source(flac_scenes, FeatureCache.disabled(), workers=2)  # arrays come back from the workers
    assert np.array_equal(np.asarray(in_memory.epoch(1)[0]), np.asarray(serial.epoch(1)[0]))


def test_a_draw_is_the_same_computed_alone_or_within_prepare(flac_scenes, tmp_path):
    alone = _source(flac_scenes, FeatureCache.open(tmp_path / "alone")).epoch(2)
    prepared = _source(flac_scenes, FeatureCache.open(tmp_path / "prepared"))
    prepared.prepare(range(4))
    assert np.array_equal(np.asarray(alone[0]), np.asarray(prepared.epoch(2)[0])) and np.array_equal(alone[1], prepared.epoch(2)[1])
    assert not np.array_equal(np.asarray(prepared.epoch(1)[0])[:10], np.asarray(prepared.epoch(2)[0])[:10])  # a fresh draw per epoch


def test_an_epoch_is_a_store_over_memory_mapped_entries_that_gathers_batches(flac_scenes, tmp_path):
    x, y = _source(flac_scenes, FeatureCache.open(tmp_path / "cache")).epoch(0)
    assert isinstance(x, SegmentStore) and all(isinstance(p, np.memmap) for p in x.parts)
    idx = np.array([0, x.shape[0] - 1, 7, 7])
    batch = x[idx]
    assert batch.shape == (4, 20, 52) and batch.dtype == np.float32 and not isinstance(batch, np.memmap)
    assert np.array_equal(batch, np.asarray(x)[idx]) and isinstance(y, np.ndarray) and y.shape == (x.shape[0],)


def test_in_memory_scenes_are_keyed_by_their_samples_and_a_disabled_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert FeatureCache.default_dir() == tmp_path / "env"
    audio, labels, recs = generated_scenes(2, 1.0, seed=3)
    a = SceneRef.from_waveform(audio[0], SR)
    assert a.key == SceneRef.from_waveform(audio[0].copy(), SR).key != SceneRef.from_waveform(audio[1], SR).key
    source = SceneSource(tiny_config(), audio, labels, recs, FeatureCache.disabled())
    assert source.epoch(0)[0].shape[0] > 0 and not (tmp_path / "env").exists()


def test_without_a_cache_memory_holds_the_clean_features_and_one_draw_whatever_the_epochs(flac_scenes):
    cache = FeatureCache.disabled()
    source = _source(flac_scenes, cache)
    source.prepare(range(6))
    assert cache.size_bytes() == 0  # nothing computed ahead in memory
    clean_bytes = np.asarray(source.clean()[0]).nbytes
    sizes = []
    for e in range(6):
        x, _ = source.epoch(e)
        sizes.append(cache.size_bytes() - clean_bytes)
        assert 0 < sizes[-1] <= x.shape[0] * 20 * 52 * 4  # the draw in use, nothing more
    assert max(sizes) < 1.5 * min(sizes), sizes


def test_the_keys_cover_the_decoder_and_the_augmentation_code(flac_scenes, monkeypatch):
    refs, _, _ = flac_scenes
    fc, aug = tiny_config().features, tiny_config().augment

    def keys():  # through the module object: another test may have imported a fresh copy of the package
        return feature_cache.clean_key(refs[0].key, fc), feature_cache.draw_key(refs[0].key, refs[1].key, fc, aug, 0, 0)

    clean, draw = keys()
    monkeypatch.setattr(feature_cache, "AUGMENT_VERSION", feature_cache.AUGMENT_VERSION + 1)
    assert keys()[0] == clean and keys()[1] != draw
    monkeypatch.undo()
    other_decoder = feature_cache.decoder_identity() | {"version": -1}
    monkeypatch.setattr(feature_cache, "decoder_identity", lambda: other_decoder)
    assert keys()[0] != clean and keys()[1] != draw


def test_a_file_rewritten_in_place_is_decoded_afresh(flac_scenes):
    ref = flac_scenes[0][0]
    before = ref.load(SR).copy()
    sf.write(ref.path, -before, SR)  # same path, same size
    st = os.stat(ref.path)
    os.utime(ref.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a coarse clock could give the same mtime
    rewritten = SceneRef.from_file(ref.path, ref.start, ref.stop)
    assert rewritten.key != ref.key and np.array_equal(rewritten.load(SR), -before)


def test_a_corrupt_entry_replaced_by_a_good_one_meanwhile_is_not_removed(flac_scenes, tmp_path, monkeypatch):
    cache = FeatureCache.open(tmp_path / "cache")
    source = _source(flac_scenes, cache)
    key = source._clean_jobs()[0].key
    good = np.asarray(source.clean()[0])[:3]
    path = cache.path(key)
    path.write_bytes(path.read_bytes()[:-100])  # corrupt
    real_read = feature_cache.read_entry

    def read_then_replaced(p, verify=True):
        try:
            return real_read(p, verify)
        finally:  # another process renames a good entry into place between the read and the clean-up
            tmp = p.with_name("other.tmp")
            tmp.write_bytes(feature_cache.encode_entry(good))
            os.replace(tmp, p)

    monkeypatch.setattr(feature_cache, "read_entry", read_then_replaced)
    assert FeatureCache.open(tmp_path / "cache").get(key) is None  # this read saw the corrupt file
    monkeypatch.undo()
    assert np.array_equal(feature_cache.read_entry(path), good)  # the good one stays


def test_a_failing_scene_is_named_and_every_other_scene_is_extracted(flac_scenes, tmp_path):
    refs, labels, recs = flac_scenes
    broken = SceneRef(None, 0, SR, "ab" * 32)  # neither a file nor samples: load() fails with a TypeError
    jobs = [Job(clean_key(s.key, tiny_config().features), s) for s in [refs[0], broken, *refs[1:]]]
    for workers in (1, 2):
        cache = FeatureCache.open(tmp_path / f"cache{workers}")
        with pytest.raises(ExtractionError, match=f"in-memory scene {'ab' * 6}: TypeError"):
            run_jobs(jobs, cache, tiny_config().features, AugmentConfig.off(), workers)
        assert [cache.has(j.key) for j in jobs] == [True, False, True, True, True, True, True]


def test_cached_segments_are_extract_segments_byte_for_byte(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(4)
    for label, sr, channels in (("a", 44100, 2), ("b", 16000, 1), ("b", 22050, 1)):
        path = root / label / f"{label}{sr}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.1 * rng.standard_normal((int(2.5 * sr), channels))).astype(np.float32), sr)
    dataset = load_dataset(root, chunk_seconds=1.0)  # chunks: slices of each file's whole resampled signal
    assert len(dataset.scenes) == 9
    direct = extract_segments(dataset, FeatureExtractor(tiny_config().features))
    cached = cached_segments(dataset, None, FeatureCache.open(tmp_path / "cache"), tiny_config().features)
    assert direct.features.tobytes() == cached.features.tobytes()
    for name in ("labels", "scene", "recording", "position"):
        assert np.array_equal(getattr(direct, name), getattr(cached, name)), name
    stream = np.concatenate(list(iter_audio(root / "a" / "a44100.flac", SR, block_frames=1000)))  # the daemon's way
    assert stream.tobytes() == read_audio(root / "a" / "a44100.flac", SR).tobytes()
