"""scripts/make-test-fixture.py still makes the committed tiny model and index (tests/fixtures/tiny/).

Not compared byte for byte: the ONNX metadata carries the training summary (every TrainConfig field, the
torch and edge_asc versions) and the index manifest its creation time and the encoder's SHA-256, so the
bytes change whenever any of those do while the model stays the same. Compared instead: what the runtime
reads (labels, feature settings, embedding size, variant, metadata format) and the hidden size, the embeddings
of the same inputs within a tight tolerance, and the index's items and settings.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import audio_gen
from conftest import INDEX_DIR, MODEL_FILE, OTHER_MODEL_FILE, REPO, TINY_FIXTURE

torch = pytest.importorskip("torch")

EMBEDDING_ATOL = 1e-4  # same code and seeds on one thread: float32 reordering at most, far below any retraining
SCRIPT = REPO / "scripts" / "make-test-fixture.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_test_fixture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixture")
    load_script().make(out)
    return out


def runtime_view(meta) -> tuple:
    """What the runtime reads, and the hidden size (the rest of the model settings follow the trainer's code)."""
    return (meta.labels, meta.feature_config, meta.embedding_size, meta.variant, meta.format, meta.model["hidden_size"])


def clip_features(meta) -> np.ndarray:
    from edge_asc.dsp.features import FeatureExtractor

    extractor = FeatureExtractor(meta.feature_config)
    return np.concatenate([extractor.signal_features(audio_gen.clip(label)) for label in audio_gen.LABELS])


@pytest.mark.parametrize("name", [MODEL_FILE, OTHER_MODEL_FILE])
def test_the_script_reproduces_each_committed_encoder(regenerated, name):
    from edge_asc.runtime.encoder import Encoder

    committed, fresh = Encoder(TINY_FIXTURE / name), Encoder(regenerated / name)
    assert runtime_view(fresh.meta) == runtime_view(committed.meta)
    assert committed.meta.labels == audio_gen.LABELS
    x = clip_features(committed.meta)  # (60, 20, 52)
    np.testing.assert_allclose(fresh.embed(x), committed.embed(x), rtol=0, atol=EMBEDDING_ATOL)


def test_the_script_reproduces_the_committed_index(regenerated):
    from edge_asc.runtime.index import SegmentIndex

    committed, fresh = SegmentIndex.load(TINY_FIXTURE / INDEX_DIR), SegmentIndex.load(regenerated / INDEX_DIR)
    keep = ("labels", "features", "embedding_size", "M", "ef_construction", "ef", "count", "variant", "format", "space")
    assert {k: getattr(fresh.manifest, k) for k in keep} == {k: getattr(committed.manifest, k) for k in keep}
    for name in ("item_labels", "positions", "scene_ids"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(committed, name), err_msg=name)


def test_the_two_committed_encoders_differ_and_the_index_fits_only_the_first():
    from edge_asc.contract import ArtifactError
    from edge_asc.runtime.encoder import Encoder
    from edge_asc.runtime.index import SegmentIndex

    first, other = Encoder(TINY_FIXTURE / MODEL_FILE), Encoder(TINY_FIXTURE / OTHER_MODEL_FILE)
    SegmentIndex.load(TINY_FIXTURE / INDEX_DIR, first.meta)
    with pytest.raises(ArtifactError, match="does not fit encoder .*encoder-other.onnx: it was built for encoder sha256"):
        SegmentIndex.load(TINY_FIXTURE / INDEX_DIR, other.meta)
    x = clip_features(first.meta)
    assert np.abs(first.embed(x) - other.embed(x)).max() > 0.1
