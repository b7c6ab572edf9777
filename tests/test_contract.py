"""The artifact contract (edge_asc.contract): the writers and readers of the encoder metadata and the index
manifest, their refusals, and the mismatch messages. Only the last test needs torch (export's writer)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from edge_asc.contract import (
    INDEX_FILE,
    ITEMS_FILE,
    ArtifactError,
    ArtifactMismatch,
    FileRecord,
    IndexManifest,
    ModelMeta,
    check_fits,
    differences,
    mismatch_message,
)
from edge_asc.dsp.features import FeatureConfig
from edge_asc.runtime.encoder import Encoder

MODEL_PATH = "models/x.onnx"
MANIFEST_PATH = "index/x/manifest.json"


def sample_meta() -> ModelMeta:
    return ModelMeta(
        labels=("rain", "forest_birds", "street_traffic"),
        feature_config=FeatureConfig(n_mels=48, delta_width=4),
        embedding_size=33,
        variant="triplet",
        version="1.2.3",
        sha256="a" * 64,
        path=MODEL_PATH,
        model={"hidden_size": 16, "variant": "triplet"},
        train={"epochs": 3},
    )


def sample_manifest() -> IndexManifest:
    return IndexManifest.for_encoder(
        sample_meta(), M=8, ef_construction=50, ef=32, count=120, created="2026-01-01T00:00:00Z",
        dataset={"root": "data", "segments": 120},
        files={INDEX_FILE: FileRecord(bytes=1000, sha256="b" * 64), ITEMS_FILE: FileRecord(bytes=200, sha256="c" * 64)},
    )


# --- writers and readers round-trip ----------------------------------------------------------------------


def test_model_metadata_written_then_read_gives_the_same_metadata():
    meta = sample_meta()
    text = json.dumps(meta.to_dict(), sort_keys=True)
    back = ModelMeta.from_json(text, meta.sha256, MODEL_PATH)
    assert back == meta
    assert back.model == meta.model and back.train == meta.train and back.path == MODEL_PATH
    assert back.to_dict() == meta.to_dict() == json.loads(text)
    assert back.input_shape == (20, 2 * 20 + 12)


def test_the_writer_reproduces_the_metadata_stored_in_the_fixture_model(tiny_artifacts):
    meta = Encoder(tiny_artifacts.model).meta
    assert meta.to_dict() == dict(meta.raw)


def test_an_index_manifest_written_then_read_gives_the_same_manifest():
    manifest = sample_manifest()
    back = IndexManifest.from_json(manifest.to_json(), MANIFEST_PATH)
    assert back == manifest
    assert back.files[INDEX_FILE] == FileRecord(1000, "b" * 64)
    assert back.encoder_meta() == dataclasses.replace(sample_meta(), version="", model={}, train={})
    assert back.encoder_file == "x.onnx"


def test_a_manifest_without_the_optional_keys_is_read_with_their_defaults():
    raw = sample_manifest().to_dict()
    for key in IndexManifest.OPTIONAL:
        del raw[key]
    back = IndexManifest.from_dict(raw, MANIFEST_PATH)
    assert back.files == {} and back.dataset == {} and back.encoder_file == ""


def test_an_unknown_manifest_key_is_logged_and_passed_over(caplog):
    raw = {**sample_manifest().to_dict(), "colour": "blue"}
    with caplog.at_level(logging.WARNING, logger="edge_asc.contract"):
        back = IndexManifest.from_dict(raw, MANIFEST_PATH)
    assert back == sample_manifest()
    assert f"{MANIFEST_PATH}: manifest keys not understood by this edge-asc: colour" in caplog.text


# --- each refusal names the file and the field, on one line ----------------------------------------------


def _meta_case(**changes):
    raw = {**sample_meta().to_dict(), **changes}
    return json.dumps({k: v for k, v in raw.items() if v is not ...})


META_REFUSALS = [
    ("not json", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    (_meta_case(format=...), "has no 'format'"),
    (_meta_case(format="1"), "format must be an integer, got '1'"),
    (_meta_case(format=2), "format 2 is not supported"),
    (_meta_case(labels=...), "has no 'labels'"),
    (_meta_case(labels=[]), "'labels' must be a non-empty list of names"),
    (_meta_case(labels=["a", "b", "a"]), "'labels' repeats a"),
    (_meta_case(features=[1]), "'features' must be an object"),
    (_meta_case(features={"colour": 1}), "unknown key features.colour"),
    (_meta_case(features={"n_mfcc": 50}), r"features: n_mfcc \(50\) cannot exceed n_mels"),
    (_meta_case(embedding_size=0), "'embedding_size' must be a positive integer, got 0"),
    (_meta_case(embedding_size=True), "'embedding_size' must be a positive integer, got True"),
    (_meta_case(variant="magic"), "'variant' 'magic' is not one of audio, triplet, noattn, softmax"),
    (_meta_case(version=3), "'version' must be a string, got 3"),
    (_meta_case(sample_rate=8000), "'sample_rate' is 8000 but its feature settings give 16000"),
    (_meta_case(segment_samples=1), "'segment_samples' is 1 but its feature settings give 4800"),
    (_meta_case(model="big"), "'model' must be an object, got 'big'"),
]


@pytest.mark.parametrize("text, message", META_REFUSALS)
def test_model_metadata_the_reader_cannot_use_is_refused_naming_the_file_and_field(text, message):
    with pytest.raises(ArtifactError, match=message) as info:
        ModelMeta.from_json(text, "a" * 64, MODEL_PATH)
    assert str(info.value).startswith(f"{MODEL_PATH}: metadata ") and "\n" not in str(info.value)


def _manifest_case(**changes):
    raw = {**sample_manifest().to_dict(), **changes}
    return json.dumps({k: v for k, v in raw.items() if v is not ...})


MANIFEST_REFUSALS = [
    ("{", "not valid JSON"),
    ("[]", "manifest must be a JSON object, got list"),
    (_manifest_case(format=2), "manifest format 2 is not supported"),
    (_manifest_case(count=..., labels=...), "manifest has no count, labels"),
    (_manifest_case(space="cosine"), "manifest space 'cosine' is not supported"),
    (_manifest_case(M=0), "manifest M must be an integer from 2 to 512, got 0"),
    (_manifest_case(count=-1), "manifest count must be an integer from 0 to 2147483648, got -1"),
    (_manifest_case(ef=1.5), "manifest ef must be an integer from 1 to 10000, got 1.5"),
    (_manifest_case(ef=1e9), "manifest ef must be an integer from 1 to 10000, got 1000000000.0"),
    (_manifest_case(ef=10**9), "manifest ef must be an integer from 1 to 10000, got 1000000000"),
    (_manifest_case(files=None), "manifest files must be an object, got None"),
    (_manifest_case(files={"index.bin": "x"}), r"manifest files.index.bin must be .*got 'x'"),
    (_manifest_case(encoder_sha256=7), "manifest encoder_sha256 must be a string, got 7"),
    (_manifest_case(dataset=[1]), r"manifest dataset must be an object, got \[1\]"),
    ("[" * 100_000, "manifest is nested more than 32 levels deep"),
    ("[" * 40 + "]" * 40, "manifest is nested more than 32 levels deep"),
    (_manifest_case(labels="rain"), "manifest labels must be a list of names"),
    (_manifest_case(features=[]), "manifest features must be an object"),
    (_manifest_case(files=[]), "manifest files must be an object"),
    (_manifest_case(files={INDEX_FILE: {"bytes": "many"}}), rf"manifest files\.{INDEX_FILE} must be"),
]


@pytest.mark.parametrize("text, message", MANIFEST_REFUSALS)
def test_a_manifest_the_reader_cannot_use_is_refused_naming_the_file_and_field(text, message):
    with pytest.raises(ArtifactError, match=message) as info:
        IndexManifest.from_json(text, MANIFEST_PATH)
    assert str(info.value).startswith(f"{MANIFEST_PATH}: ") and "\n" not in str(info.value)


# --- an index against an encoder -------------------------------------------------------------------------


def test_an_index_fits_the_encoder_it_was_built_for_and_no_other():
    manifest, meta = sample_manifest(), sample_meta()
    assert differences(manifest, meta) == []
    check_fits(manifest, meta, "index/x")
    other = dataclasses.replace(meta, sha256="f" * 64, labels=tuple(reversed(meta.labels)), variant="audio")
    with pytest.raises(ArtifactMismatch) as info:
        check_fits(manifest, other, "index/x")
    assert [f for f, _, _ in info.value.differences] == ["encoder_sha256", "labels", "variant"]
    assert str(info.value) == (
        f"index index/x does not fit encoder {MODEL_PATH}: it was built for encoder sha256 aaaaaaaaaaaa… but {MODEL_PATH} is "
        "ffffffffffff…; the same 3 labels in another order (index: rain, forest_birds, street_traffic; model: street_traffic, "
        f"forest_birds, rain); variant is 'triplet' in the index but 'audio' in {MODEL_PATH}"
    )


def test_a_feature_setting_only_one_side_has_is_named_as_absent():
    manifest = dataclasses.replace(sample_manifest(), features={**sample_manifest().features, "colour": 1})
    diffs = differences(manifest, sample_meta())
    assert diffs == [("features.colour", 1, "<absent>")]
    assert mismatch_message("i", "m.onnx", diffs) == "index i does not fit encoder m.onnx: features.colour is 1 in the index but '<absent>' in m.onnx"


# --- the writer in training/export.py ---------------------------------------------------------------------


def test_exports_metadata_is_read_back_by_the_runtime_reader():
    pytest.importorskip("torch")
    from edge_asc.training.checkpoint import TrainedModel
    from edge_asc.training.config import ModelConfig, TrainConfig
    from edge_asc.training.export import metadata
    from edge_asc.training.model import EncoderNet

    config = TrainConfig(model=ModelConfig(hidden_size=8), features=FeatureConfig(delta_width=4))
    trained = TrainedModel(model=EncoderNet(config.model, config.features.n_features, config.features.frames_per_segment), config=config, labels=("a", "b"), epoch=0)
    raw = metadata(trained)
    meta = ModelMeta.from_json(json.dumps(raw, sort_keys=True), "0" * 64, MODEL_PATH)
    assert meta.labels == ("a", "b") and meta.feature_config == FeatureConfig(delta_width=4)
    assert meta.embedding_size == trained.model_config.embedding_size and meta.variant == trained.model_config.variant
    assert meta.to_dict() == raw


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(sample_manifest().to_dict())), value=JSON_VALUES)
def test_a_manifest_with_any_value_in_any_field_loads_or_fails_in_one_line(key, value):
    text = _manifest_case(**{key: value})
    try:
        IndexManifest.from_json(text, MANIFEST_PATH)
    except ArtifactError as exc:
        assert str(exc).startswith(f"{MANIFEST_PATH}: ") and "\n" not in str(exc) and len(str(exc)) < 600


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet='[]{}",:0123456789.e-truefalsn \\', max_size=200))
def test_arbitrary_manifest_text_fails_in_one_line(text):
    try:
        IndexManifest.from_json(text, MANIFEST_PATH)
    except ArtifactError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
