"""ONNX export (training/export.py): the file matches PyTorch, carries the metadata, and is written atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edge_asc import __version__  # noqa: E402
from edge_asc.contract import INPUT_NAME, METADATA_KEY, OUTPUT_NAME  # noqa: E402
from edge_asc.dsp.features import FeatureConfig  # noqa: E402
from edge_asc.training.config import ModelConfig  # noqa: E402
from edge_asc.training.export import VERIFY_ATOL, ExportError, export_onnx  # noqa: E402
from edge_asc.training.train import fit_scenes  # noqa: E402
from training.generated import CLASSES, features_of, generated_scenes, tiny_config  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("variant", ["audio", "noattn", "softmax", "triplet"])
def test_the_onnx_model_matches_pytorch_and_carries_its_metadata(tmp_path, variant, trained_tiny):
    if variant == "audio":
        trained = trained_tiny
    else:
        audio, labels, recs = generated_scenes(2, 1.2, seed=2)
        mc = ModelConfig(variant=variant, hidden_size=16)
        trained = fit_scenes(tiny_config(epochs=1, model=mc), audio, labels, recs, CLASSES, progress=False)
    path = export_onnx(trained, tmp_path / "models" / "enc.onnx")
    assert path.is_file() and not [p for p in path.parent.iterdir() if p.name != "enc.onnx"]
    proto = onnx.load(str(path))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    fc = FeatureConfig()
    assert meta["format"] == 1 and meta["version"] == __version__
    assert meta["labels"] == list(CLASSES) and meta["variant"] == variant
    assert meta["features"] == fc.to_dict() and meta["sample_rate"] == 16000
    assert meta["segment_samples"] == 4800 and meta["segment_seconds"] == pytest.approx(0.3)
    assert meta["embedding_size"] == trained.model_config.embedding_size
    assert meta["model"]["hidden_size"] == 16 and meta["train"]["epochs"] == trained.epoch
    # real features from generated audio, at batch sizes other than the one exported with
    x = features_of(*generated_scenes(1, 1.5, seed=9)[:2])[0]  # (N, 20, 52) raw
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME] and [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    for batch in (1, 3, x.shape[0]):
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x[:batch]})[0]
        want = trained.embed(x[:batch])
        assert got.shape == (batch, meta["embedding_size"])
        assert np.max(np.abs(got - want)) <= VERIFY_ATOL  # 1e-5


def test_a_failed_export_leaves_the_previous_file_and_no_temporary_one(tmp_path, trained_tiny, monkeypatch):
    path = export_onnx(trained_tiny, tmp_path / "enc.onnx")
    before = path.read_bytes()

    def disagree(*args, **kwargs):
        raise ExportError("ONNX Runtime and PyTorch differ")

    monkeypatch.setattr("edge_asc.training.export.verify", disagree)
    with pytest.raises(ExportError):
        export_onnx(trained_tiny, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["enc.onnx"]
