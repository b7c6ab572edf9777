"""The hnswlib segment index with its manifest (edge_asc.runtime.index, runtime.items, runtime.select), without torch.

The encoder metadata comes from the committed tiny fixture (``tiny_artifacts``); real hnswlib graphs are
built, written and read back; save failures are real (a file-size limit).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_asc.contract import INDEX_FILE, ITEMS_FILE, MANIFEST_FILE, ArtifactError, ArtifactMismatch, ModelMeta
from edge_asc.dsp.features import FeatureConfig
from edge_asc.runtime.encoder import Encoder
from edge_asc.runtime.index import SegmentIndex


@pytest.fixture(scope="module")
def meta(tiny_artifacts) -> ModelMeta:
    return Encoder(tiny_artifacts.model).meta


def random_items(meta: ModelMeta, n: int, seed: int = 0):
    """n random embeddings of ``meta``'s size with labels, scenes and recordings."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, meta.embedding_size)).astype(np.float32)
    labels = rng.integers(0, len(meta.labels), n)
    recordings = np.array([f"rec{i % 7}" for i in range(n)])
    scenes = np.array([f"scene{i // 10}" for i in range(n)])
    return emb, labels, scenes, recordings


def exact_nearest(data: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((queries[:, None, :].astype(np.float64) - data[None, :, :]) ** 2).sum(-1)  # (Q, N)
    return d2.argmin(1), d2.min(1)


def other_encoder(meta: ModelMeta, tiny_artifacts, kind: str) -> ModelMeta:
    """The metadata of an encoder the index was not built for: other weights (the fixture's second
    model), other labels, or other feature settings (each with its own file hash and path)."""
    if kind == "other_weights":
        return Encoder(tiny_artifacts.other_model).meta
    if kind == "other_labels":
        return dataclasses.replace(meta, labels=(*meta.labels[:-1], "delta"), sha256="e" * 64, path="models/labels.onnx")
    return dataclasses.replace(meta, feature_config=FeatureConfig(delta_width=4), sha256="d" * 64, path="models/features.onnx")


# --- index: manifest, files, mismatches ------------------------------------------------------------------


def test_a_saved_index_loads_back_with_its_manifest_items_and_answers(meta, tmp_path):
    emb, labels, scenes, recordings = random_items(meta, 500)
    index = SegmentIndex.build(emb, labels, scenes, recordings, meta, M=8, ef_construction=50, ef=40,
                               positions=np.arange(500) % 10, dataset={"root": "somewhere"})
    before = index.query(emb[:20], k=3)
    out = index.save(tmp_path / "idx")
    assert sorted(p.name for p in out.iterdir()) == [INDEX_FILE, ITEMS_FILE, MANIFEST_FILE]
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["encoder_sha256"] == meta.sha256
    assert manifest["labels"] == list(meta.labels) and manifest["features"] == FeatureConfig().to_dict()
    assert (manifest["embedding_size"], manifest["M"], manifest["ef_construction"], manifest["ef"], manifest["count"]) == (meta.embedding_size, 8, 50, 40, 500)
    assert manifest["space"] == "l2" and manifest["format"] == 1 and manifest["variant"] == "audio"
    assert manifest["dataset"] == {"root": "somewhere"}

    loaded = SegmentIndex.load(out, encoder_meta=meta)
    assert loaded.manifest == index.manifest and loaded.ef == 40 and len(loaded) == 500
    np.testing.assert_array_equal(loaded.item_labels, labels)
    np.testing.assert_array_equal(loaded.scene_ids, scenes)
    np.testing.assert_array_equal(loaded.recording_ids, recordings)
    np.testing.assert_array_equal(loaded.positions, np.arange(500) % 10)
    np.testing.assert_array_equal(loaded.vectors(), emb)
    after = loaded.query(emb[:20], k=3)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "model, expected",
    [
        ("other_weights", [r"it was built for encoder sha256 [0-9a-f]{12}… but \S*encoder-other\.onnx is [0-9a-f]{12}…"]),
        ("other_labels", ["encoder sha256", "only the index has street_traffic; only the model has delta"]),
        ("other_features", ["encoder sha256", r"features\.delta_width is 5 in the index but 4 in \S*features\.onnx"]),
    ],
)
def test_load_refuses_an_index_built_for_another_encoder_naming_each_difference(meta, tiny_artifacts, tmp_path, model, expected):
    emb, labels, scenes, recordings = random_items(meta, 100)
    SegmentIndex.build(emb, labels, scenes, recordings, meta, M=8, ef_construction=20).save(tmp_path / "idx")
    other = other_encoder(meta, tiny_artifacts, model)
    with pytest.raises(ArtifactMismatch) as info:
        SegmentIndex.load(tmp_path / "idx", encoder_meta=other)
    message = str(info.value)
    assert message.startswith(f"index {tmp_path / 'idx'} does not fit encoder {other.path}")
    assert meta.sha256[:12] in message and other.sha256[:12] in message
    for pattern in expected:
        assert re.search(pattern, message), (pattern, message)
    fields = [f for f, _, _ in info.value.differences]
    assert fields[0] == "encoder_sha256"
    assert {"other_labels": "labels", "other_features": "features.delta_width"}.get(model, "encoder_sha256") in fields
    # the same index loads for its own encoder, and check() agrees with load()
    index = SegmentIndex.load(tmp_path / "idx", encoder_meta=meta)
    with pytest.raises(ArtifactMismatch):
        index.check(other)


def test_a_mismatch_names_every_differing_field_with_both_values(meta):
    emb, labels, scenes, recordings = random_items(meta, 50)
    index = SegmentIndex.build(emb, labels, scenes, recordings, meta, M=8, ef_construction=20)
    other = ModelMeta(labels=meta.labels[:2], feature_config=FeatureConfig(n_mels=64), embedding_size=meta.embedding_size + 1,
                      variant="triplet", version="x", format=1, sha256="f" * 64, path="models/x.onnx")
    with pytest.raises(ArtifactMismatch) as info:
        index.check(other, where="index/amb13")
    message = str(info.value)
    assert [f for f, _, _ in info.value.differences] == ["encoder_sha256", "labels", "features.n_mels", "embedding_size", "variant"]
    for part in ("but models/x.onnx is ffffffffffff…", "only the index has street_traffic", "features.n_mels is 40 in the index but 64",
                 f"embedding_size is {meta.embedding_size} in the index but {meta.embedding_size + 1}", "variant is 'audio' in the index but 'triplet'"):
        assert part in message, (part, message)


def test_load_refuses_truncated_altered_or_unreadable_files_naming_them(meta, tmp_path):
    emb, labels, scenes, recordings = random_items(meta, 200)
    out = SegmentIndex.build(emb, labels, scenes, recordings, meta, M=8, ef_construction=20).save(tmp_path / "idx")
    data = (out / INDEX_FILE).read_bytes()
    (out / INDEX_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(out / INDEX_FILE))}: \d+ bytes, the manifest says {len(data)}"):
        SegmentIndex.load(out)
    (out / INDEX_FILE).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ArtifactError, match="sha256 .* differs from the manifest"):
        SegmentIndex.load(out)
    (out / MANIFEST_FILE).write_text("{")
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(out / MANIFEST_FILE))}: manifest is not valid JSON"):
        SegmentIndex.load(out)
    with pytest.raises(ArtifactError, match="not found"):
        SegmentIndex.load(tmp_path / "nothing")


# --- index: atomic writes -------------------------------------------------------------------------------


def test_save_replaces_an_existing_index_and_leaves_nothing_behind(meta, tmp_path):
    a = random_items(meta, 100, seed=1)
    b = random_items(meta, 300, seed=2)
    SegmentIndex.build(*a, meta, M=8, ef_construction=20).save(tmp_path / "idx")
    SegmentIndex.build(*b, meta, M=8, ef_construction=20).save(tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    loaded = SegmentIndex.load(tmp_path / "idx")
    assert len(loaded) == 300
    np.testing.assert_array_equal(loaded.vectors(), b[0])
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "idx").stat().st_mode & 0o777 == 0o777 & ~umask  # readable by a daemon user, as mkdir makes it


def test_save_replaces_the_target_of_a_symlink_also_without_an_atomic_exchange(meta, tmp_path, monkeypatch):
    """Where renameat2(RENAME_EXCHANGE) is missing (not Linux, old kernels), the old index is moved aside first."""
    import edge_asc.fsutil as fsutil

    SegmentIndex.build(*random_items(meta, 100, seed=1), meta, M=8, ef_construction=20).save(tmp_path / "v1")
    (tmp_path / "current").symlink_to("v1")
    monkeypatch.setattr(fsutil, "_exchange", lambda a, b: False)
    SegmentIndex.build(*random_items(meta, 300, seed=2), meta, M=8, ef_construction=20).save(tmp_path / "current")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"] and (tmp_path / "current").is_symlink()
    assert len(SegmentIndex.load(tmp_path / "current")) == 300 == len(SegmentIndex.load(tmp_path / "v1"))


def test_save_refuses_to_replace_something_that_is_not_an_index(meta, tmp_path):
    index = SegmentIndex.build(*random_items(meta, 50), meta, M=8, ef_construction=20)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="non-empty directory without manifest.json"):
        index.save(tmp_path / "notes")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ArtifactError, match="not a directory"):
        index.save(tmp_path / "file")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine" and (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize(
    "limit, error",
    [
        (256 * 1024, "OSError .*File too large"),  # items.npz cannot be written
        # only index.bin is too large: hnswlib truncates it without an error, the read-back catches it
        (1024 * 1024, "ArtifactError .*index.bin: cannot load the hnswlib index"),
    ],
)
def test_failed_save_leaves_the_previous_index_intact(meta, tiny_artifacts, tmp_path, limit, error):
    """A save that runs out of file space (RLIMIT_FSIZE in a child process) changes nothing on disk."""
    target = tmp_path / "idx"
    old = random_items(meta, 100, seed=3)
    SegmentIndex.build(*old, meta, M=8, ef_construction=20).save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        from edge_asc.runtime.encoder import Encoder
        from edge_asc.runtime.index import SegmentIndex
        meta = Encoder({str(tiny_artifacts.model)!r}).meta
        rng = np.random.default_rng(0)
        n = 20000
        index = SegmentIndex.build(rng.standard_normal((n, {meta.embedding_size})).astype(np.float32), rng.integers(0, 3, n),
                                   np.arange(n), np.arange(n) % 5, meta, M=8, ef_construction=20)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            index.save({str(target)!r})
        except Exception as exc:
            print(type(exc).__name__, exc)
            sys.exit(3)
        sys.exit(0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 3, proc.stdout + proc.stderr  # the save failed...
    assert re.match(error, proc.stdout), proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # ...left no temporary directory...
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # ...and did not touch the old index
    np.testing.assert_array_equal(SegmentIndex.load(target, encoder_meta=meta).vectors(), old[0])


# --- index: search and reduction -----------------------------------------------------------------------


def test_query_agrees_with_exact_search_nearest_first(meta):
    D = meta.embedding_size
    rng = np.random.default_rng(7)
    n = 3000
    # items on a low-dimensional structure, as learned embeddings are (iid noise in D dimensions is not)
    basis = rng.standard_normal((6, D)).astype(np.float32)
    emb = (rng.standard_normal((n, 6)).astype(np.float32) @ basis + 0.05 * rng.standard_normal((n, D))).astype(np.float32)
    labels = rng.integers(0, 3, n)
    index = SegmentIndex.build(emb, labels, np.arange(n), np.arange(n) % 4, meta, M=16, ef_construction=100, ef=64)
    queries = (rng.standard_normal((200, 6)).astype(np.float32) @ basis).astype(np.float32)
    want_ids, want_d2 = exact_nearest(emb, queries)
    got_labels, got_d2, got_ids = index.query(queries, k=5)
    assert got_labels.shape == got_d2.shape == got_ids.shape == (200, 5)
    assert got_labels.dtype == np.int64 and got_ids.dtype == np.int64 and got_d2.dtype == np.float32
    recall = np.mean(got_ids[:, 0] == want_ids)
    assert recall >= 0.99, recall
    np.testing.assert_array_equal(got_labels, labels[got_ids])
    np.testing.assert_allclose(got_d2[:, 0], want_d2, rtol=1e-4, atol=1e-4)  # squared L2
    assert np.all(np.diff(got_d2, axis=1) >= 0)  # nearest first
    exact_d2 = ((queries[:, None, :] - emb[got_ids]) ** 2).sum(-1)
    np.testing.assert_allclose(got_d2, exact_d2, rtol=1e-4, atol=1e-4)
    # an item queried with its own vector finds itself at distance 0
    _, d2, ids = index.query(emb[:50], k=1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(50))
    assert np.all(d2 < 1e-6)
    index.set_ef(200)
    assert index.ef == 200 and index.manifest.ef == 200


def test_query_and_build_refuse_bad_arguments(meta):
    D = meta.embedding_size
    index = SegmentIndex.build(*random_items(meta, 30), meta, M=8, ef_construction=20)
    with pytest.raises(ValueError, match=rf"\(B, {D}\)"):
        index.query(np.zeros((2, D + 1), np.float32))
    with pytest.raises(ValueError, match="between 1 and the index size"):
        index.query(np.zeros((1, D), np.float32), k=31)
    with pytest.raises(ValueError, match="NaN"):
        index.query(np.full((1, D), np.nan, np.float32))
    with pytest.raises(ValueError, match=rf"\(N, {D}\)"):
        SegmentIndex.build(np.zeros((3, 5), np.float32), [0, 1, 2], [0, 1, 2], [0, 0, 0], meta)
    with pytest.raises(ValueError, match="item_labels must lie in 0..2"):
        SegmentIndex.build(np.zeros((3, D), np.float32), [0, 1, 3], [0, 1, 2], [0, 0, 0], meta)


def test_subsample_keeps_each_kept_item_with_its_vector_label_scene_and_recording(meta):
    emb, labels, scenes, recordings = random_items(meta, 600)
    index = SegmentIndex.build(emb, labels, scenes, recordings, meta, M=8, ef_construction=20, ef=30)
    small = index.subsample(50, seed=0)
    assert len(small) == 150 and all(v == 50 for v in small.counts().values())
    assert small.manifest.ef == 30 and small.manifest.encoder_sha256 == meta.sha256
    assert small.manifest.dataset["subsample"] == {"max_items_per_label": 50, "seed": 0, "from_count": 600}
    # every kept item is one of the original items, with its label, scene and recording (exact search)
    orig, d2 = exact_nearest(emb, small.vectors())
    assert np.all(d2 < 1e-9)
    np.testing.assert_array_equal(small.item_labels, labels[orig])
    np.testing.assert_array_equal(small.scene_ids, scenes[orig])
    np.testing.assert_array_equal(small.recording_ids, recordings[orig])
    small.check(meta)


def test_the_committed_fixture_index_loads_for_its_encoder_and_finds_its_own_items(tiny_artifacts, meta):
    index = SegmentIndex.load(tiny_artifacts.index, encoder_meta=meta)
    assert index.labels == meta.labels and len(index) > 0
    labels, d2, ids = index.query(index.vectors(np.arange(10)), k=1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(10))
    np.testing.assert_array_equal(labels[:, 0], index.item_labels[:10])
    with pytest.raises(ArtifactMismatch, match="encoder sha256"):
        SegmentIndex.load(tiny_artifacts.index, encoder_meta=Encoder(tiny_artifacts.other_model).meta)
