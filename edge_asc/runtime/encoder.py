"""The runtime encoder: an exported ONNX model and its ``edge_asc`` metadata (numpy + onnxruntime only).

The file contract is edge_asc.contract (docs/CONTRACTS.md): input ``features`` float32
``[batch, frames, n_features]`` of raw features (normalisation is folded into the graph), output
``embedding`` float32 ``[batch, D]``, and a ``metadata_props`` entry ``edge_asc`` that
``contract.ModelMeta`` reads. A file that is not ONNX, or whose metadata is missing or does not describe
the graph, is refused with an ``ArtifactError`` naming the file and the fault.

The file is read once: its SHA-256 (which the index manifest records) is computed over exactly the bytes
the session is built from.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge_asc.bounded import MAX_TEXT_FILE_BYTES
from edge_asc.contract import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, ArtifactError, ModelMeta

log = logging.getLogger(__name__)

MAX_MODEL_BYTES = 256 << 20  # an encoder file: the shipped one is 0.25 MB, a large variant a few MB


def _session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # sequential execution: no parallelism between operators
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only; problems reach the caller as exceptions
    return opts


def _dim_ok(dim: Any, expected: int) -> bool:
    """A graph dimension matches when it is the expected number or symbolic (a name or None)."""
    return not isinstance(dim, int) or dim == expected


BATCH_INVARIANCE = """onnxruntime's CPU kernels give each row of a batch the same bits whatever the batch
holds, for every batch of two or more; a batch of one takes other kernels (matrix-vector products in the
LSTM) and differs in the last bits (measured with the shipped encoder; tests/runtime/test_encoder.py checks
it on the model at hand). So ``embed`` runs a single segment as a batch of two: the daemon's one segment at
a time, the bulk ``classify`` path's many per call and the index build's 512 give every segment the same
embedding, and the same neighbours. A batch of two costs the same as one (0.30 ms vs 0.31 ms)."""


class Encoder:
    """An ONNX encoder session on the CPU: ``embed(features (B, frames, n_features)) -> (B, D)`` float32."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = path = Path(path)
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_MODEL_BYTES + 1)  # bounded: a hostile or wrong file is not read whole
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot read encoder file ({exc.strerror or exc})") from exc
        if len(data) > MAX_MODEL_BYTES:
            raise ArtifactError(f"{path}: larger than {MAX_MODEL_BYTES} bytes; not an edge-asc encoder (they are well under 10 MB)")
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            self.session = ort.InferenceSession(data, sess_options=_session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph classes
            raise ArtifactError(f"{path}: not a usable ONNX model ({_first_line(exc)})") from exc
        self.meta = ModelMeta.from_json(_metadata_text(self.session, path), sha256, path)
        self.threads = threads
        self._check_graph()
        log.debug("encoder %s: %d labels, D=%d, variant %s", path, len(self.meta.labels), self.meta.embedding_size, self.meta.variant)

    def _check_graph(self) -> None:
        """The graph's input and output must be the ones the metadata describes."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs:
            raise ArtifactError(f"{self.path}: ONNX model has no input '{INPUT_NAME}' (inputs: {', '.join(inputs)})")
        if OUTPUT_NAME not in outputs:
            raise ArtifactError(f"{self.path}: ONNX model has no output '{OUTPUT_NAME}' (outputs: {', '.join(outputs)})")
        frames, n_features = self.meta.input_shape
        shape = inputs[INPUT_NAME].shape
        if len(shape) != 3 or not (_dim_ok(shape[1], frames) and _dim_ok(shape[2], n_features)):
            raise ArtifactError(
                f"{self.path}: input '{INPUT_NAME}' has shape {shape}, metadata says [batch, {frames}, {n_features}]"
            )
        if inputs[INPUT_NAME].type != "tensor(float)":
            raise ArtifactError(f"{self.path}: input '{INPUT_NAME}' is {inputs[INPUT_NAME].type}, expected tensor(float)")
        out = outputs[OUTPUT_NAME].shape
        if len(out) != 2 or not _dim_ok(out[1], self.meta.embedding_size):
            raise ArtifactError(
                f"{self.path}: output '{OUTPUT_NAME}' has shape {out}, metadata says [batch, {self.meta.embedding_size}]"
            )

    @property
    def embedding_size(self) -> int:
        return self.meta.embedding_size

    def embed(self, features: np.ndarray) -> np.ndarray:
        """features: (B, frames, n_features) raw features -> (B, D) float32 embeddings."""
        x = np.asarray(features)
        frames, n_features = self.meta.input_shape
        if x.ndim != 3 or x.shape[1:] != (frames, n_features):
            raise ValueError(f"encoder {self.path.name} takes features of shape (batch, {frames}, {n_features}), got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros((0, self.meta.embedding_size), dtype=np.float32)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"encoder {self.path.name} takes floating-point features, got {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)  # (B, frames, n_features)
        if not np.isfinite(x).all():
            raise ValueError(f"encoder {self.path.name}: features contain NaN or infinite values")
        b = x.shape[0]
        if b == 1:  # a batch of one runs as two (the segment twice): see BATCH_INVARIANCE
            x = np.concatenate([x, x])
        (emb,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})  # (B, D)
        if emb.shape != (x.shape[0], self.meta.embedding_size):
            raise ArtifactError(
                f"{self.path}: output '{OUTPUT_NAME}' has shape {emb.shape} for a batch of {x.shape[0]}, "
                f"expected ({x.shape[0]}, {self.meta.embedding_size})"
            )
        return np.asarray(emb[:b], dtype=np.float32)

    def __repr__(self) -> str:
        return f"Encoder({str(self.path)!r}, D={self.meta.embedding_size}, variant={self.meta.variant!r})"


def _metadata_text(session: Any, path: Path) -> str:
    """The ``edge_asc`` metadata entry of the model: present, UTF-8 and at most MAX_TEXT_FILE_BYTES long."""
    try:
        props = session.get_modelmeta().custom_metadata_map  # onnxruntime decodes every entry as UTF-8
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: ONNX metadata is not UTF-8 text (byte {exc.start} of an entry)") from None
    if METADATA_KEY not in props:
        raise ArtifactError(f"{path}: ONNX model has no '{METADATA_KEY}' metadata (not exported by edge-asc export?)")
    text = props[METADATA_KEY]
    if len(text) > MAX_TEXT_FILE_BYTES:
        raise ArtifactError(f"{path}: ONNX metadata '{METADATA_KEY}' is longer than {MAX_TEXT_FILE_BYTES} characters; refused unread")
    return text


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
