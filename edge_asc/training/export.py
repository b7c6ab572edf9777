"""Export a trained encoder to ONNX: raw features in, embedding out, everything the runtime needs inside.

The file (docs/CONTRACTS.md) has input ``features`` float32 [batch, 20, 52] of *raw* features (the
training set's normalisation is part of the graph), output ``embedding`` float32 [batch, D], a dynamic
batch axis, and the metadata key ``edge_asc`` holding a JSON object with the labels, feature settings,
embedding size, variant and training summary. The file is written to a temporary sibling, checked with
onnx.checker, run with ONNX Runtime against PyTorch on the same input, and only then renamed into place
(edge_asc.fsutil.atomic_write_file).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_asc import __version__
from edge_asc.contract import INPUT_NAME, METADATA_KEY, MIN_OPSET, OPSET, OUTPUT_NAME, ModelMeta
from edge_asc.fsutil import atomic_write_file
from edge_asc.training.checkpoint import TrainedModel, load_checkpoint

log = logging.getLogger(__name__)

VERIFY_ATOL = 1e-5  # max abs difference allowed between ONNX Runtime and PyTorch embeddings
VERIFY_BATCHES = (1, 7)


class ExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model; the message gives the difference."""


def metadata(trained: TrainedModel) -> dict[str, Any]:
    """The ``edge_asc`` metadata object of docs/CONTRACTS.md, written by ``contract.ModelMeta.to_dict``."""
    mc = trained.model_config
    meta = ModelMeta(
        labels=tuple(trained.labels),
        feature_config=trained.feature_config,
        embedding_size=mc.embedding_size,
        variant=mc.variant,
        version=__version__,
        model=trained.model_settings,
        train=trained.summary(),
    )
    return meta.to_dict()


def sample_input(trained: TrainedModel, batch: int, seed: int = 0) -> np.ndarray:
    """Random features on the training set's scale: mean + std * N(0, 1), (batch, 20, 52) float32."""
    model = trained.model
    rng = np.random.default_rng(seed)
    mean = model.feature_mean.numpy()
    std = model.feature_std.numpy()
    shape = (batch, model.n_frames, model.n_features)
    return (mean + std * rng.standard_normal(shape)).astype(np.float32)


def verify(path: Path, trained: TrainedModel, atol: float = VERIFY_ATOL) -> float:
    """Run the ONNX file with ONNX Runtime and PyTorch on the same inputs; return the max abs difference."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in VERIFY_BATCHES:
        x = sample_input(trained, batch, seed=batch)
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]  # (B, D)
        want = trained.embed(x)  # (B, D)
        if got.shape != want.shape:
            raise ExportError(f"{path}: ONNX output shape {got.shape}, PyTorch {want.shape}")
        worst = max(worst, float(np.max(np.abs(got - want))))
    if not worst <= atol:
        raise ExportError(f"{path}: ONNX Runtime and PyTorch differ by {worst:.3g} (allowed {atol:g})")
    return worst


def export_onnx(source: TrainedModel | str | Path, out_path: str | Path, opset: int = OPSET, atol: float = VERIFY_ATOL) -> Path:
    """Write the encoder of ``source`` (a TrainedModel, a run folder or a checkpoint file) to ``out_path``."""
    import onnx

    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    trained = source if isinstance(source, TrainedModel) else load_checkpoint(source)
    diffs: list[float] = []

    def write(tmp: Path) -> None:
        _write_graph(trained, tmp, opset)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = json.dumps(metadata(trained), sort_keys=True)
        proto.producer_name = "edge-asc"
        proto.producer_version = __version__
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        diffs.append(verify(tmp, trained, atol))

    out_path = Path(out_path)
    atomic_write_file(out_path, write)
    log.info(
        "exported %s encoder (%d labels, embedding %d) to %s; ONNX Runtime vs PyTorch max abs difference %.2g",
        trained.model_config.variant, len(trained.labels), trained.model_config.embedding_size, out_path, diffs[0],
    )
    return out_path


def _write_graph(trained: TrainedModel, path: Path, opset: int) -> None:
    """torch.onnx.export of the encoder (eval mode) to ``path``: raw features in, embedding out, dynamic batch."""
    model = trained.model.eval()
    example = torch.from_numpy(sample_input(trained, 2))  # (2, 20, 52)
    with torch.no_grad(), warnings.catch_warnings():
        # the exporter warns that an LSTM exported with batch 2 may fail at other batch sizes; it builds
        # h0/c0 from the input's shape here, and verify() runs batches of 1 and 7
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # nn.LSTM's shape checks
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export", category=DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter maps nn.LSTM to one ONNX LSTM node
        )
