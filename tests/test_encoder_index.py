"""The runtime ONNX encoder reader, the hnswlib segment index with its manifest, and edge-asc build-index.

Real ONNX files come from edge_asc.training.export.export_onnx (small untrained encoders, hidden size 8, D = 17);
real hnswlib graphs are built, written and read back; save failures are real (a file-size limit).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from edge_asc.cli import main as cli_main
from edge_asc.config import ConfigError
from edge_asc.training.datasets import extract_segments, load_dataset
from edge_asc.runtime.encoder import ArtifactError, Encoder, ModelMeta, file_sha256
from edge_asc.dsp.features import FeatureConfig, FeatureExtractor
from edge_asc.runtime.index import (
    INDEX_FILE,
    ITEMS_FILE,
    MANIFEST_FILE,
    ArtifactMismatch,
    SegmentIndex,
    select_per_label,
)
from edge_asc.training.build_index import build_index_from_dataset

LABELS = ("alpha", "beta", "gamma")
HIDDEN = 8
D = 2 * HIDDEN + 1  # audio variant: [h'; h'']


# --- helpers ------------------------------------------------------------------------------------------


def export_tiny(path: Path, labels=LABELS, features: FeatureConfig | None = None, seed: int = 0) -> Path:
    """A real exported ONNX encoder (untrained, hidden size 8) via edge_asc.training.export.export_onnx."""
    import torch

    from edge_asc.training.export import export_onnx
    from edge_asc.training.model import Encoder as TorchEncoder
    from edge_asc.training.train import TrainedModel
    from edge_asc.training.config import ModelConfig, TrainConfig

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config = TrainConfig(model=ModelConfig(hidden_size=HIDDEN), features=features or FeatureConfig())
    trained = TrainedModel(model=TorchEncoder(config.model), config=config, labels=tuple(labels), epoch=0)
    return export_onnx(trained, path)


def set_metadata(src: Path, dst: Path, value: str | None) -> Path:
    """Copy an ONNX file with its edge_asc metadata replaced by ``value`` (removed when None)."""
    import onnx

    proto = onnx.load(str(src))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != "edge_asc"]
    del proto.metadata_props[:]
    for key, val in kept + ([("edge_asc", value)] if value is not None else []):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, val
    onnx.save(proto, str(dst))
    return dst


def random_items(n: int, d: int = D, n_labels: int = len(LABELS), seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, d)).astype(np.float32)
    labels = rng.integers(0, n_labels, n)
    recordings = np.array([f"rec{i % 7}" for i in range(n)])
    scenes = np.array([f"scene{i // 10}" for i in range(n)])
    return emb, labels, scenes, recordings


def exact_nearest(data: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((queries[:, None, :].astype(np.float64) - data[None, :, :]) ** 2).sum(-1)  # (Q, N)
    return d2.argmin(1), d2.min(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "base": export_tiny(root / "base.onnx"),
        "other_weights": export_tiny(root / "other.onnx", seed=1),
        "other_labels": export_tiny(root / "labels.onnx", labels=("alpha", "beta", "delta")),
        "other_features": export_tiny(root / "features.onnx", features=FeatureConfig(delta_width=4)),
    }


@pytest.fixture(scope="module")
def encoder(models) -> Encoder:
    return Encoder(models["base"])


# --- encoder ------------------------------------------------------------------------------------------


def test_encoder_reads_metadata_and_embeds(models, encoder):
    meta = encoder.meta
    assert meta.labels == LABELS
    assert meta.embedding_size == D and meta.variant == "audio" and meta.format == 1
    assert meta.feature_config == FeatureConfig()
    assert meta.sha256 == file_sha256(models["base"])
    x = np.random.default_rng(0).standard_normal((5, 20, 52)).astype(np.float32) * 10
    emb = encoder.embed(x)
    assert emb.shape == (5, D) and emb.dtype == np.float32
    # batch independence: one segment at a time gives the same embeddings
    one = np.concatenate([encoder.embed(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(one, emb, atol=1e-6)
    assert encoder.embed(np.zeros((0, 20, 52), np.float32)).shape == (0, D)


def test_encoder_rejects_bad_input_shapes(encoder):
    with pytest.raises(ValueError, match=r"\(batch, 20, 52\).*\(20, 52\)"):
        encoder.embed(np.zeros((20, 52), np.float32))
    with pytest.raises(ValueError, match=r"\(3, 20, 40\)"):
        encoder.embed(np.zeros((3, 20, 40), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        encoder.embed(np.full((1, 20, 52), np.nan, np.float32))


def test_encoder_refuses_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a model\n")
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(bad))}: not a usable ONNX model"):
        Encoder(bad)
    with pytest.raises(ArtifactError, match=r"missing\.onnx: cannot read"):
        Encoder(tmp_path / "missing.onnx")


def test_encoder_refuses_onnx_without_or_with_bad_metadata(models, tmp_path):
    bare = set_metadata(models["base"], tmp_path / "bare.onnx", None)
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(bare))}: ONNX model has no 'edge_asc' metadata"):
        Encoder(bare)
    raw = dict(Encoder(models["base"]).meta.raw)
    cases = {
        "not json": "not valid JSON",
        json.dumps({k: v for k, v in raw.items() if k != "labels"}): "has no 'labels'",
        json.dumps({**raw, "format": 2}): "format 2 is not supported",
        json.dumps({**raw, "embedding_size": 99}): r"output 'embedding' has shape .*metadata says \[batch, 99\]",
        json.dumps({**raw, "features": {**raw["features"], "n_mfcc": 13}}): r"input 'features' has shape .*\[batch, 20, 38\]",
        json.dumps({**raw, "features": {**raw["features"], "colour": 1}}): "unknown key features.colour",
        json.dumps({**raw, "labels": ["a", "a", "b"]}): "repeats a",
        json.dumps({**raw, "variant": "magic"}): "'variant' 'magic' is not one of audio",
    }
    for i, (value, message) in enumerate(cases.items()):
        path = set_metadata(models["base"], tmp_path / f"bad{i}.onnx", value)
        with pytest.raises(ArtifactError, match=message) as info:
            Encoder(path)
        assert str(path) in str(info.value)


# --- index: manifest, files, mismatches ------------------------------------------------------------------


def test_manifest_round_trip(encoder, tmp_path):
    emb, labels, scenes, recordings = random_items(500)
    index = SegmentIndex.build(emb, labels, scenes, recordings, encoder.meta, M=8, ef_construction=50, ef=40,
                               positions=np.arange(500) % 10, dataset={"root": "somewhere"})
    before = index.query(emb[:20], k=3)
    out = index.save(tmp_path / "idx")
    assert sorted(p.name for p in out.iterdir()) == [INDEX_FILE, ITEMS_FILE, MANIFEST_FILE]
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["encoder_sha256"] == encoder.meta.sha256
    assert manifest["labels"] == list(LABELS) and manifest["features"] == FeatureConfig().to_dict()
    assert (manifest["embedding_size"], manifest["M"], manifest["ef_construction"], manifest["ef"], manifest["count"]) == (D, 8, 50, 40, 500)
    assert manifest["space"] == "l2" and manifest["format"] == 1 and manifest["variant"] == "audio"
    assert manifest["dataset"] == {"root": "somewhere"}

    loaded = SegmentIndex.load(out, encoder_meta=encoder.meta)
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
        ("other_weights", [r"it was built for encoder sha256 [0-9a-f]{12}… but \S*other\.onnx is [0-9a-f]{12}…"]),
        ("other_labels", ["encoder sha256", "only the index has gamma; only the model has delta"]),
        ("other_features", ["encoder sha256", r"features\.delta_width is 5 in the index but 4 in \S*features\.onnx"]),
    ],
)
def test_load_refuses_an_index_built_for_another_encoder(encoder, models, tmp_path, model, expected):
    emb, labels, scenes, recordings = random_items(100)
    SegmentIndex.build(emb, labels, scenes, recordings, encoder.meta, M=8, ef_construction=20).save(tmp_path / "idx")
    other = Encoder(models[model]).meta
    with pytest.raises(ArtifactMismatch) as info:
        SegmentIndex.load(tmp_path / "idx", encoder_meta=other)
    message = str(info.value)
    assert message.startswith(f"index {tmp_path / 'idx'} does not fit encoder {models[model]}")
    assert encoder.meta.sha256[:12] in message and other.sha256[:12] in message
    for pattern in expected:
        assert re.search(pattern, message), (pattern, message)
    fields = [f for f, _, _ in info.value.differences]
    assert fields[0] == "encoder_sha256"
    assert {"other_labels": "labels", "other_features": "features.delta_width"}.get(model, "encoder_sha256") in fields
    # the same index loads for its own encoder, and check() agrees with load()
    index = SegmentIndex.load(tmp_path / "idx", encoder_meta=encoder.meta)
    with pytest.raises(ArtifactMismatch):
        index.check(other)


def test_mismatch_names_every_differing_field(encoder):
    emb, labels, scenes, recordings = random_items(50)
    index = SegmentIndex.build(emb, labels, scenes, recordings, encoder.meta, M=8, ef_construction=20)
    other = ModelMeta(labels=("alpha", "beta"), feature_config=FeatureConfig(n_mels=64), embedding_size=33,
                      variant="triplet", version="x", format=1, sha256="f" * 64, path="models/x.onnx")
    with pytest.raises(ArtifactMismatch) as info:
        index.check(other, where="index/amb13")
    message = str(info.value)
    assert [f for f, _, _ in info.value.differences] == ["encoder_sha256", "labels", "features.n_mels", "embedding_size", "variant"]
    for part in ("but models/x.onnx is ffffffffffff…", "only the index has gamma", "features.n_mels is 40 in the index but 64",
                 "embedding_size is 17 in the index but 33", "variant is 'audio' in the index but 'triplet'"):
        assert part in message, (part, message)


def test_load_detects_damaged_files(encoder, tmp_path):
    emb, labels, scenes, recordings = random_items(200)
    out = SegmentIndex.build(emb, labels, scenes, recordings, encoder.meta, M=8, ef_construction=20).save(tmp_path / "idx")
    data = (out / INDEX_FILE).read_bytes()
    (out / INDEX_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(out / INDEX_FILE))}: \d+ bytes, the manifest says {len(data)}"):
        SegmentIndex.load(out)
    (out / INDEX_FILE).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ArtifactError, match="sha256 .* differs from the manifest"):
        SegmentIndex.load(out)
    (out / MANIFEST_FILE).write_text("{")
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(out / MANIFEST_FILE))}: not valid JSON"):
        SegmentIndex.load(out)
    with pytest.raises(ArtifactError, match="not found"):
        SegmentIndex.load(tmp_path / "nothing")


# --- index: atomic writes -------------------------------------------------------------------------------


def test_save_replaces_an_existing_index_and_leaves_nothing_behind(encoder, tmp_path):
    a = random_items(100, seed=1)
    b = random_items(300, seed=2)
    SegmentIndex.build(*a, encoder.meta, M=8, ef_construction=20).save(tmp_path / "idx")
    SegmentIndex.build(*b, encoder.meta, M=8, ef_construction=20).save(tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    loaded = SegmentIndex.load(tmp_path / "idx")
    assert len(loaded) == 300
    np.testing.assert_array_equal(loaded.vectors(), b[0])
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "idx").stat().st_mode & 0o777 == 0o777 & ~umask  # readable by a daemon user, as mkdir makes it


def test_save_without_an_atomic_exchange_and_through_a_symlink(encoder, tmp_path, monkeypatch):
    """Where renameat2(RENAME_EXCHANGE) is missing (not Linux, old kernels), the old index is moved aside first."""
    import edge_asc.runtime.index as index_module

    SegmentIndex.build(*random_items(100, seed=1), encoder.meta, M=8, ef_construction=20).save(tmp_path / "v1")
    (tmp_path / "current").symlink_to("v1")
    monkeypatch.setattr(index_module, "_exchange", lambda a, b: False)
    SegmentIndex.build(*random_items(300, seed=2), encoder.meta, M=8, ef_construction=20).save(tmp_path / "current")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"] and (tmp_path / "current").is_symlink()
    assert len(SegmentIndex.load(tmp_path / "current")) == 300 == len(SegmentIndex.load(tmp_path / "v1"))


def test_save_refuses_to_replace_something_that_is_not_an_index(encoder, tmp_path):
    index = SegmentIndex.build(*random_items(50), encoder.meta, M=8, ef_construction=20)
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
def test_failed_save_leaves_the_previous_index_intact(encoder, models, tmp_path, limit, error):
    """A save that runs out of file space (RLIMIT_FSIZE in a child process) changes nothing on disk."""
    target = tmp_path / "idx"
    old = random_items(100, seed=3)
    SegmentIndex.build(*old, encoder.meta, M=8, ef_construction=20).save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        from edge_asc.runtime.encoder import Encoder
        from edge_asc.runtime.index import SegmentIndex
        meta = Encoder({str(models["base"])!r}).meta
        rng = np.random.default_rng(0)
        n = 20000
        index = SegmentIndex.build(rng.standard_normal((n, {D})).astype(np.float32), rng.integers(0, 3, n),
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
    np.testing.assert_array_equal(SegmentIndex.load(target, encoder_meta=encoder.meta).vectors(), old[0])


# --- index: search and reduction -----------------------------------------------------------------------


def test_query_agrees_with_exact_search(encoder):
    rng = np.random.default_rng(7)
    n = 3000
    # items on a low-dimensional structure, as learned embeddings are (iid noise in 17-D is not)
    basis = rng.standard_normal((6, D)).astype(np.float32)
    emb = (rng.standard_normal((n, 6)).astype(np.float32) @ basis + 0.05 * rng.standard_normal((n, D))).astype(np.float32)
    labels = rng.integers(0, 3, n)
    index = SegmentIndex.build(emb, labels, np.arange(n), np.arange(n) % 4, encoder.meta, M=16, ef_construction=100, ef=64)
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


def test_query_rejects_bad_arguments(encoder):
    index = SegmentIndex.build(*random_items(30), encoder.meta, M=8, ef_construction=20)
    with pytest.raises(ValueError, match=rf"\(B, {D}\)"):
        index.query(np.zeros((2, D + 1), np.float32))
    with pytest.raises(ValueError, match="between 1 and the index size"):
        index.query(np.zeros((1, D), np.float32), k=31)
    with pytest.raises(ValueError, match="NaN"):
        index.query(np.full((1, D), np.nan, np.float32))
    with pytest.raises(ValueError, match=rf"\(N, {D}\)"):
        SegmentIndex.build(np.zeros((3, 5), np.float32), [0, 1, 2], [0, 1, 2], [0, 0, 0], encoder.meta)
    with pytest.raises(ValueError, match="item_labels must lie in 0..2"):
        SegmentIndex.build(np.zeros((3, D), np.float32), [0, 1, 3], [0, 1, 2], [0, 0, 0], encoder.meta)


def test_select_per_label_spreads_over_recordings():
    labels = np.array([0] * 100 + [1] * 10 + [2] * 40)
    recordings = np.array([0] * 90 + [1] * 10 + [2] * 10 + [3] * 20 + [4] * 20)  # label 0: 90 + 10 items
    keep = select_per_label(labels, recordings, 20, seed=1)
    assert np.all(np.diff(keep) > 0)
    counts = np.bincount(labels[keep], minlength=3)
    assert counts.tolist() == [20, 10, 20]
    # label 0: both recordings get half, although recording 0 holds 90 % of its items
    assert np.bincount(recordings[keep][labels[keep] == 0]).tolist() == [10, 10]
    np.testing.assert_array_equal(keep, select_per_label(labels, recordings, 20, seed=1))
    assert not np.array_equal(keep, select_per_label(labels, recordings, 20, seed=2))


def test_subsample_keeps_vectors_and_items(encoder):
    emb, labels, scenes, recordings = random_items(600)
    index = SegmentIndex.build(emb, labels, scenes, recordings, encoder.meta, M=8, ef_construction=20, ef=30)
    small = index.subsample(50, seed=0)
    assert len(small) == 150 and all(v == 50 for v in small.counts().values())
    assert small.manifest.ef == 30 and small.manifest.encoder_sha256 == encoder.meta.sha256
    assert small.manifest.dataset["subsample"] == {"max_items_per_label": 50, "seed": 0, "from_count": 600}
    # every kept item is one of the original items, with its label, scene and recording
    _, d2, ids = index.query(small.vectors(), k=1)
    assert np.all(d2[:, 0] < 1e-9)
    orig = ids[:, 0]
    np.testing.assert_array_equal(small.item_labels, labels[orig])
    np.testing.assert_array_equal(small.scene_ids, scenes[orig])
    np.testing.assert_array_equal(small.recording_ids, recordings[orig])
    small.check(encoder.meta)


# --- from a dataset, and the command ---------------------------------------------------------------------


def write_dataset(root: Path) -> Path:
    """Three classes of distinct generated sounds, two recordings each (1.0 to 1.6 s)."""
    sr = 16000
    rng = np.random.default_rng(0)
    for label, freq in zip(LABELS, (300.0, 1200.0, 3500.0)):
        for r in range(2):
            n = int(sr * (1.0 + 0.3 * r))
            t = np.arange(n) / sr
            x = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.05 * r) * t) + 0.02 * rng.standard_normal(n)
            (root / label).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / label / f"{label}{r}.wav"), x.astype(np.float32), sr)
    (root / "beta" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    return root


def test_build_index_from_dataset_embeds_what_the_daemon_computes(encoder, tmp_path):
    dataset = load_dataset(write_dataset(tmp_path / "data"))
    index = build_index_from_dataset(encoder, dataset, M=8, ef_construction=50)
    segs = extract_segments(dataset, FeatureExtractor(encoder.meta.feature_config))
    assert len(index) == len(segs) == 3 * (3 + 4)  # per label: 1.0 s -> 3 and 1.3 s -> 4 segments
    np.testing.assert_allclose(index.vectors(), encoder.embed(segs.features), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(index.labels)[index.item_labels], np.asarray(dataset.labels)[segs.labels])
    assert set(index.scene_ids) == {s.scene_id for s in dataset.scenes}
    assert set(index.recording_ids) == set(dataset.recording_ids)
    np.testing.assert_array_equal(index.positions, segs.position)
    info = index.manifest.dataset
    assert info["segments"] == 21 and info["recordings"] == 6 and info["skipped_files"] == [str(tmp_path / "data" / "beta" / "broken.wav")]
    # a selection of scenes and a per-label cap
    part = build_index_from_dataset(encoder, dataset, scene_indices=[0, 1, 2], M=8, ef_construction=50, max_items_per_label=2)
    assert len(part) <= 6 and part.manifest.dataset["scenes"] == 3


def test_build_index_refuses_labels_the_encoder_does_not_know(models, tmp_path):
    dataset = load_dataset(write_dataset(tmp_path / "data"))
    with pytest.raises(ValueError, match="not trained on: gamma"):
        build_index_from_dataset(Encoder(models["other_labels"]), dataset)


def test_build_index_command(models, tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    config = tmp_path / "index.yaml"
    config.write_text(yaml.safe_dump({"index": {"M": 6, "ef": 12, "max_per_label": 5}, "model": {"hidden_size": 8}}))
    out = tmp_path / "index" / "tiny"
    argv = ["build-index", "--model", str(models["base"]), "--data", str(data), "--out", str(out), "--config", str(config), "--ef", "20"]
    assert cli_main(argv) == 0
    index = SegmentIndex.load(out, encoder_meta=Encoder(models["base"]).meta)
    assert (index.manifest.M, index.manifest.ef, index.manifest.ef_construction) == (6, 20, 200)  # file, then flag
    assert len(index) == 15 and index.manifest.dataset["subsample"]["from_count"] == 21
    assert cli_main(["build-index", "--model", str(models["other_labels"]), "--data", str(data), "--out", str(tmp_path / "x")]) == 1
    assert "not trained on: gamma" in capsys.readouterr().err and not (tmp_path / "x").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"index": {"m": 6}}))
    assert cli_main(argv[:-4] + ["--config", str(bad)]) == 2
    assert "unknown key index.m" in capsys.readouterr().err
    bad.write_text(yaml.safe_dump({"indx": {}}))
    with pytest.raises(ConfigError, match="unknown section 'indx'"):
        from edge_asc.commands.build_index import config_from_file

        config_from_file(bad)
