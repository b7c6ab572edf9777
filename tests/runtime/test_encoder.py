"""The runtime ONNX encoder reader (edge_asc.runtime.encoder), without torch or onnx.

The encoder files are the committed tiny fixture (``tiny_artifacts``); files with other metadata are that
model with its ``edge_asc`` metadata entry rewritten at the protobuf level (``with_metadata``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge_asc.contract import METADATA_KEY, ArtifactError, file_sha256
from edge_asc.dsp.features import FeatureConfig
from edge_asc.runtime.encoder import Encoder

MODEL_METADATA_FIELD = 14  # ModelProto.metadata_props (onnx.proto3)


# --- a minimal protobuf rewrite of ModelProto.metadata_props -----------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """Top-level (field number, raw bytes of the whole field) of a protobuf message."""
    out, i = [], 0
    while i < len(data):
        start = i
        tag, i = _varint(data, i)
        wire = tag & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            n, i = _varint(data, i)
            i += n
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        out.append((tag >> 3, data[start:i]))
    return out


def _string_field(number: int, text: str) -> bytes:
    raw = text.encode("utf-8")
    return _encode_varint(number << 3 | 2) + _encode_varint(len(raw)) + raw


def with_metadata(src: Path, dst: Path, value: str | None) -> Path:
    """Copy an ONNX file with its ``edge_asc`` metadata replaced by ``value`` (removed when None)."""
    entry_key = _string_field(1, METADATA_KEY)
    kept = [raw for number, raw in _fields(src.read_bytes()) if not (number == MODEL_METADATA_FIELD and entry_key in raw)]
    if value is not None:
        entry = entry_key + _string_field(2, value)
        kept.append(_encode_varint(MODEL_METADATA_FIELD << 3 | 2) + _encode_varint(len(entry)) + entry)
    dst.write_bytes(b"".join(kept))
    return dst


# --- the encoder ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(tiny_artifacts) -> Encoder:
    return Encoder(tiny_artifacts.model)


def test_the_encoder_reads_its_metadata_and_embeds_batches_like_single_segments(tiny_artifacts, encoder):
    meta = encoder.meta
    assert meta.labels == tiny_artifacts.labels
    assert meta.variant == "audio" and meta.format == 1 and meta.embedding_size == encoder.embedding_size
    assert meta.feature_config == FeatureConfig()
    assert meta.sha256 == file_sha256(tiny_artifacts.model) and meta.path == str(tiny_artifacts.model)
    d = meta.embedding_size
    x = np.random.default_rng(0).standard_normal((5, 20, 52)).astype(np.float32) * 10
    emb = encoder.embed(x)
    assert emb.shape == (5, d) and emb.dtype == np.float32
    one = np.concatenate([encoder.embed(x[i : i + 1]) for i in range(5)])
    np.testing.assert_array_equal(one, emb)  # bit for bit (encoder.BATCH_INVARIANCE): bulk classify relies on it
    x = np.random.default_rng(1).standard_normal((37, 20, 52)).astype(np.float32)
    whole = encoder.embed(x)
    for size in (2, 3, 16):
        np.testing.assert_array_equal(np.concatenate([encoder.embed(x[i : i + size]) for i in range(0, 37, size)]), whole)
    assert encoder.embed(np.zeros((0, 20, 52), np.float32)).shape == (0, d)


def test_the_encoder_refuses_features_of_the_wrong_shape_or_with_nan(encoder):
    with pytest.raises(ValueError, match=r"\(batch, 20, 52\).*\(20, 52\)"):
        encoder.embed(np.zeros((20, 52), np.float32))
    with pytest.raises(ValueError, match=r"\(3, 20, 40\)"):
        encoder.embed(np.zeros((3, 20, 40), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        encoder.embed(np.full((1, 20, 52), np.nan, np.float32))


def test_a_file_that_is_not_onnx_or_is_missing_is_refused_naming_it(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a model\n")
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(bad))}: not a usable ONNX model"):
        Encoder(bad)
    with pytest.raises(ArtifactError, match=r"missing\.onnx: cannot read"):
        Encoder(tmp_path / "missing.onnx")


def test_rewriting_the_metadata_keeps_the_model_usable(tiny_artifacts, encoder, tmp_path):
    same = with_metadata(tiny_artifacts.model, tmp_path / "same.onnx", json.dumps(dict(encoder.meta.raw)))
    copy = Encoder(same)
    assert copy.meta == dataclasses.replace(encoder.meta, sha256=copy.meta.sha256)
    x = np.ones((2, 20, 52), np.float32)
    np.testing.assert_array_equal(copy.embed(x), encoder.embed(x))


def test_a_model_without_edge_asc_metadata_is_refused_naming_the_file(tiny_artifacts, tmp_path):
    bare = with_metadata(tiny_artifacts.model, tmp_path / "bare.onnx", None)
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(bare))}: ONNX model has no 'edge_asc' metadata"):
        Encoder(bare)


def test_metadata_that_does_not_describe_the_graph_is_refused_naming_the_file_and_field(tiny_artifacts, encoder, tmp_path):
    raw = dict(encoder.meta.raw)
    n_features_13 = FeatureConfig(n_mfcc=13).n_features
    cases = {
        "not json": "not valid JSON",
        json.dumps({k: v for k, v in raw.items() if k != "labels"}): "has no 'labels'",
        json.dumps({**raw, "format": 2}): "format 2 is not supported",
        json.dumps({**raw, "embedding_size": 99}): r"output 'embedding' has shape .*metadata says \[batch, 99\]",
        json.dumps({**raw, "features": {**raw["features"], "n_mfcc": 13}}): rf"input 'features' has shape .*\[batch, 20, {n_features_13}\]",
        json.dumps({**raw, "features": {**raw["features"], "colour": 1}}): "unknown key features.colour",
        json.dumps({**raw, "labels": ["a", "a", "b"]}): "repeats a",
        json.dumps({**raw, "variant": "magic"}): "'variant' 'magic' is not one of audio",
    }
    for i, (value, message) in enumerate(cases.items()):
        path = with_metadata(tiny_artifacts.model, tmp_path / f"bad{i}.onnx", value)
        with pytest.raises(ArtifactError, match=message) as info:
            Encoder(path)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_metadata_that_is_not_utf8_is_refused_in_one_line_naming_the_file(tiny_artifacts, encoder, tmp_path):
    value = json.dumps({**encoder.meta.raw, "version": "caf\u00e9"}, ensure_ascii=False)
    good = with_metadata(tiny_artifacts.model, tmp_path / "utf8.onnx", value)
    data = good.read_bytes()
    assert data.count("caf\u00e9".encode()) == 1
    bad = tmp_path / "not-utf8.onnx"
    bad.write_bytes(data.replace("caf\u00e9".encode(), b"caf\xff\xfe"))  # same length: the protobuf stays valid
    with pytest.raises(ArtifactError, match=rf"^{re.escape(str(bad))}: ONNX metadata is not UTF-8 text") as info:
        Encoder(bad)
    assert "\n" not in str(info.value)


def test_metadata_nested_too_deeply_is_refused_naming_the_file(tiny_artifacts, tmp_path):
    path = with_metadata(tiny_artifacts.model, tmp_path / "deep.onnx", "[" * 100_000)
    with pytest.raises(ArtifactError, match="nested more than 32 levels deep"):
        Encoder(path)


def test_a_model_file_larger_than_the_limit_is_refused_unread(tmp_path, monkeypatch):
    from edge_asc.runtime import encoder as encoder_module

    monkeypatch.setattr(encoder_module, "MAX_MODEL_BYTES", 1000)  # a real 256 MiB file would only slow the suite
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\0" * 1001)
    with pytest.raises(ArtifactError, match=r"big.onnx: larger than 1000 bytes; not an edge-asc encoder"):
        Encoder(big)
