"""The artifact contract: what an exported encoder file and an index directory hold, written and read here.

Two formats cross the line between training and the runtime (docs/CONTRACTS.md):

* the ONNX encoder: input ``INPUT_NAME`` float32 ``[batch, frames, n_features]`` of raw features, output
  ``OUTPUT_NAME`` float32 ``[batch, D]``, and a ``metadata_props`` entry ``METADATA_KEY`` holding the JSON
  object that ``ModelMeta.to_dict`` writes and ``ModelMeta.from_json`` reads;
* the index directory: ``INDEX_FILE`` (hnswlib), ``ITEMS_FILE`` (the ``ITEM_ARRAYS``) and ``MANIFEST_FILE``,
  the JSON object that ``IndexManifest.to_dict`` writes and ``IndexManifest.from_json`` reads.

Each constant of these formats is defined here once; training/export.py writes through the writers, and
runtime/encoder.py and runtime/index.py read through the readers. A reader refuses a file it cannot use
with an ``ArtifactError`` whose one-line message names the file and the field; an index used with an
encoder it was not built for is refused with an ``ArtifactMismatch`` naming every field that differs.
No torch and no onnx (the device install has neither): the feature settings are
``edge_asc.dsp.features.FeatureConfig``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from edge_asc.bounded import cut, load_json, one_line
from edge_asc.config import ConfigError
from edge_asc.dsp.features import FeatureConfig

log = logging.getLogger(__name__)

# --- the ONNX encoder file -----------------------------------------------------------------------------

METADATA_KEY = "edge_asc"  # the metadata_props entry holding ModelMeta's JSON
METADATA_FORMAT = 1  # the metadata format written and read
INPUT_NAME = "features"  # float32 [batch, frames, n_features], raw features
OUTPUT_NAME = "embedding"  # float32 [batch, D]
MIN_OPSET = 17  # the oldest ONNX opset export writes (one LSTM node, LayerNormalization)
OPSET = MIN_OPSET  # the opset export writes by default
VARIANTS = ("audio", "triplet", "noattn", "softmax")  # encoder variants a model file may declare
HASH_CHUNK = 1 << 20  # bytes per read when hashing a file

# --- the index directory -------------------------------------------------------------------------------

INDEX_FORMAT = 1  # the manifest format written and read
SPACE = "l2"  # hnswlib space: distances are squared Euclidean
INDEX_FILE = "index.bin"
ITEMS_FILE = "items.npz"
MANIFEST_FILE = "manifest.json"
ITEM_ARRAYS = ("label", "scene", "recording", "position", "scene_ids", "recording_ids")

# hnswlib settings, measured by bench/bench_encoder_index.py (D = 129, one thread, single queries): 0.998 at 100k
# and 0.994 at 1M random vectors on a 16-dimensional structure (0.16 / 0.27 ms median on the shared 2-core
# machine); iid Gaussian vectors reach 0.99 at no usable ef (0.63 at ef 512, 1M): their nearest neighbour is barely
# nearer than any other item. ef by bench/bench_ef.py on queries from recordings NOT in the index (ambient13, 5 folds
# by recording, the shipped encoder): recall@1 0.994 at ef 64 but 0.984 in the worst fold; 0.997 at ef 128 (every
# fold >= 0.992; with enrolled places 0.999), for 0.08 ms instead of 0.05 ms per query.
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF = 128
DEFAULT_SEED = 100
# the ranges a manifest's numbers must lie in (a hostile "ef": 1e9 would make every search read the whole
# graph; a huge M or embedding_size sizes hnswlib's allocations): far beyond any index edge-asc builds
MAX_EF = 10000  # the broadest hnswlib search accepted (manifest ef / ef_construction, config inference.ef)
MANIFEST_RANGES = {"embedding_size": (1, 65536), "M": (2, 512), "ef_construction": (1, MAX_EF), "ef": (1, MAX_EF), "count": (0, 1 << 31)}


class ArtifactError(Exception):
    """A model or index file that cannot be used; the message names the file and what is wrong."""


class ArtifactMismatch(ArtifactError):
    """An index that was not built for the encoder it is used with; ``differences`` lists each field."""

    def __init__(self, message: str, differences: Sequence[tuple[str, Any, Any]]) -> None:
        super().__init__(message)
        self.differences = list(differences)  # (field, index value, encoder value)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _is_count(value: Any, low: int) -> bool:
    """An int (not a bool) of at least ``low``."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= low


def json_object(text: str, what: str, where: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object (bounded: edge_asc.bounded.load_json); ``where`` names the file,
    ``what`` the entry."""
    raw = load_json(text, ArtifactError, f"{where}{what}")
    if not isinstance(raw, dict):
        raise ArtifactError(f"{where}{what} must be a JSON object, got {type(raw).__name__}")
    return raw


# --- the encoder's metadata ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelMeta:
    """What an encoder file says about itself (its ``edge_asc`` metadata) plus the file's SHA-256.

    ``to_dict`` is the writer (export stores ``json.dumps(meta.to_dict(), sort_keys=True)``);
    ``from_json`` / ``from_dict`` the reader. ``sha256``, ``raw`` and ``path`` describe the file read and
    are not written.
    """

    labels: tuple[str, ...]
    feature_config: FeatureConfig
    embedding_size: int
    variant: str
    version: str
    format: int = METADATA_FORMAT
    sha256: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    path: str = field(default="", compare=False)
    model: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the model config, as trained
    train: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the training summary

    @property
    def input_shape(self) -> tuple[int, int]:
        """(frames, n_features) of one segment."""
        return (self.feature_config.frames_per_segment, self.feature_config.n_features)

    def to_dict(self) -> dict[str, Any]:
        """The metadata JSON object (docs/CONTRACTS.md); the derived sample_rate, segment_samples and
        segment_seconds are written for readers that do not rebuild the feature settings."""
        fc = self.feature_config
        return {
            "format": self.format,
            "version": self.version,
            "labels": list(self.labels),
            "features": fc.to_dict(),
            "sample_rate": fc.sample_rate,
            "segment_samples": fc.segment_samples,
            "segment_seconds": fc.segment_seconds,
            "embedding_size": self.embedding_size,
            "variant": self.variant,
            "model": dict(self.model),
            "train": dict(self.train),
        }

    @classmethod
    def from_json(cls, text: str, sha256: str, path: str | Path = "") -> "ModelMeta":
        """Parse and check the ``edge_asc`` metadata JSON; raises ArtifactError naming ``path`` and the key."""
        where = f"{path}: " if path else ""
        return cls.from_dict(json_object(text, f"metadata '{METADATA_KEY}'", where), sha256, path)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], sha256: str, path: str | Path = "") -> "ModelMeta":
        """Check the metadata object; raises ArtifactError naming ``path`` and the key at the first fault."""
        where = f"{path}: " if path else ""

        def need(key: str) -> Any:
            if key not in raw:
                raise ArtifactError(f"{where}metadata '{METADATA_KEY}' has no '{key}'")
            return raw[key]

        fmt = need("format")
        if isinstance(fmt, bool) or not isinstance(fmt, int):
            raise ArtifactError(f"{where}metadata format must be an integer, got {cut(fmt)}")
        if fmt != METADATA_FORMAT:
            raise ArtifactError(f"{where}metadata format {fmt} is not supported (this edge-asc reads format {METADATA_FORMAT})")
        labels = need("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise ArtifactError(f"{where}metadata 'labels' must be a non-empty list of names, got {cut(labels)}")
        if len(set(labels)) != len(labels):
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            raise ArtifactError(f"{where}metadata 'labels' repeats {', '.join(dupes)}")
        features = need("features")
        if not isinstance(features, dict):
            raise ArtifactError(f"{where}metadata 'features' must be an object, got {cut(features)}")
        try:
            feature_config = FeatureConfig.from_dict(features)
        except ConfigError as exc:
            raise ArtifactError(f"{where}metadata {exc}") from exc
        size = need("embedding_size")
        if not _is_count(size, 1):
            raise ArtifactError(f"{where}metadata 'embedding_size' must be a positive integer, got {cut(size)}")
        variant = need("variant")
        if variant not in VARIANTS:
            raise ArtifactError(f"{where}metadata 'variant' {cut(variant)} is not one of {', '.join(VARIANTS)}")
        version = need("version")
        if not isinstance(version, str):
            raise ArtifactError(f"{where}metadata 'version' must be a string, got {cut(version)}")
        for key, expected in (("sample_rate", feature_config.sample_rate), ("segment_samples", feature_config.segment_samples)):
            if key in raw and raw[key] != expected:
                raise ArtifactError(f"{where}metadata '{key}' is {cut(raw[key])} but its feature settings give {expected!r}")
        for key in ("model", "train"):
            if not isinstance(raw.get(key, {}), dict):
                raise ArtifactError(f"{where}metadata '{key}' must be an object, got {cut(raw[key])}")
        return cls(
            labels=tuple(labels),
            feature_config=feature_config,
            embedding_size=size,
            variant=variant,
            version=version,
            format=fmt,
            sha256=sha256,
            raw=dict(raw),
            path=str(path),
            model=dict(raw.get("model", {})),
            train=dict(raw.get("train", {})),
        )


# --- the index manifest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """Size and SHA-256 of one file of an index directory, as its manifest records them."""

    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> "FileRecord":
        """The record of the file at ``path`` as it is now."""
        return cls(bytes=Path(path).stat().st_size, sha256=file_sha256(path))


@dataclass(frozen=True)
class IndexManifest:
    """``manifest.json`` of an index directory: the encoder the items were computed with, the hnswlib
    settings, the item count, where the items came from and the other files' records.

    ``to_dict`` is the writer, ``from_json`` / ``from_dict`` the reader."""

    encoder_sha256: str
    labels: tuple[str, ...]
    features: Mapping[str, Any]  # FeatureConfig.to_dict() of the encoder
    embedding_size: int
    M: int
    ef_construction: int
    ef: int
    count: int
    variant: str
    created: str  # UTC, ISO 8601
    encoder_file: str = ""  # the encoder's file name when the index was built (for messages only)
    dataset: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, FileRecord] = field(default_factory=dict)  # INDEX_FILE / ITEMS_FILE -> record
    format: int = INDEX_FORMAT
    space: str = SPACE

    OPTIONAL = ("encoder_file", "dataset", "files")  # keys a manifest may leave out

    @classmethod
    def for_encoder(cls, meta: ModelMeta, **settings: Any) -> "IndexManifest":
        """A manifest for items computed by the encoder ``meta``; ``settings`` gives M, ef_construction,
        ef, count, created and optionally dataset."""
        return cls(
            encoder_sha256=meta.sha256,
            labels=tuple(meta.labels),
            features=meta.feature_config.to_dict(),
            embedding_size=meta.embedding_size,
            variant=meta.variant,
            encoder_file=Path(meta.path).name if meta.path else "",
            **settings,
        )

    def encoder_meta(self) -> ModelMeta:
        """The encoder description this index was built for (enough to build a derived index)."""
        return ModelMeta(
            labels=tuple(self.labels),
            feature_config=FeatureConfig.from_dict(self.features),
            embedding_size=self.embedding_size,
            variant=self.variant,
            version="",
            sha256=self.encoder_sha256,
            path=self.encoder_file,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "IndexManifest":
        """Parse and check ``manifest.json``; ``where`` names the file in every refusal."""
        return cls.from_dict(load_json(text, ArtifactError, f"{where}: manifest"), where)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> "IndexManifest":
        """Check the manifest object; raises ArtifactError naming ``where`` and the key at the first fault."""
        if not isinstance(raw, dict):
            raise ArtifactError(f"{where}: manifest must be a JSON object, got {type(raw).__name__}")
        fmt = raw.get("format")
        if fmt != INDEX_FORMAT:
            raise ArtifactError(f"{where}: manifest format {cut(fmt)} is not supported (this edge-asc reads format {INDEX_FORMAT})")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in raw and n not in cls.OPTIONAL)
        if missing:
            raise ArtifactError(f"{where}: manifest has no {', '.join(missing)}")
        unknown = sorted(set(raw) - names)
        if unknown:
            log.warning("%s: manifest keys not understood by this edge-asc: %s", where, ", ".join(unknown))
        if raw["space"] != SPACE:
            raise ArtifactError(f"{where}: manifest space {cut(raw['space'])} is not supported (only {SPACE!r})")
        for key, (low, high) in MANIFEST_RANGES.items():
            if not (_is_count(raw[key], low) and raw[key] <= high):
                raise ArtifactError(f"{where}: manifest {key} must be an integer from {low} to {high}, got {cut(raw[key])}")
        for key in ("encoder_sha256", "variant", "created", "encoder_file"):
            if not isinstance(raw.get(key, ""), str):
                raise ArtifactError(f"{where}: manifest {key} must be a string, got {cut(raw[key])}")
        if not isinstance(raw.get("dataset", {}), dict):
            raise ArtifactError(f"{where}: manifest dataset must be an object, got {cut(raw['dataset'])}")
        labels = raw["labels"]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ArtifactError(f"{where}: manifest labels must be a list of names, got {cut(labels)}")
        if not isinstance(raw["features"], dict):
            raise ArtifactError(f"{where}: manifest features must be an object, got {cut(raw['features'])}")
        kwargs = {k: v for k, v in raw.items() if k in names}
        kwargs["labels"] = tuple(labels)
        kwargs["files"] = file_records(raw.get("files", {}), where)
        return cls(**kwargs)


def file_records(raw: Any, where: str) -> dict[str, FileRecord]:
    """The manifest's ``files`` object: name -> {"bytes", "sha256"}."""
    if not isinstance(raw, dict):
        raise ArtifactError(f"{where}: manifest files must be an object, got {cut(raw)}")
    out = {}
    for name, rec in raw.items():
        if not (isinstance(rec, dict) and _is_count(rec.get("bytes"), 0) and isinstance(rec.get("sha256"), str)):
            raise ArtifactError(f"{where}: manifest files.{one_line(name, 60)} must be {{\"bytes\": <int>, \"sha256\": <hex>}}, got {cut(rec)}")
        out[name] = FileRecord(bytes=rec["bytes"], sha256=rec["sha256"])
    return out


# --- an index against an encoder --------------------------------------------------------------------------


def differences(manifest: IndexManifest, meta: ModelMeta) -> list[tuple[str, Any, Any]]:
    """(field, index value, encoder value) for every setting the index and the encoder disagree on."""
    out: list[tuple[str, Any, Any]] = []
    if manifest.encoder_sha256 != meta.sha256:
        out.append(("encoder_sha256", manifest.encoder_sha256, meta.sha256))
    if tuple(manifest.labels) != tuple(meta.labels):
        out.append(("labels", tuple(manifest.labels), tuple(meta.labels)))
    model_features = meta.feature_config.to_dict()
    for key in sorted(set(manifest.features) | set(model_features)):
        a, b = manifest.features.get(key, "<absent>"), model_features.get(key, "<absent>")
        if a != b:
            out.append((f"features.{key}", a, b))
    if manifest.embedding_size != meta.embedding_size:
        out.append(("embedding_size", manifest.embedding_size, meta.embedding_size))
    if manifest.variant != meta.variant:
        out.append(("variant", manifest.variant, meta.variant))
    return out


def short_sha(sha: str) -> str:
    """The first 12 hex digits of a SHA-256, for messages."""
    return sha[:12] + "…"


def _labels_difference(a: Sequence[str], b: Sequence[str]) -> str:
    only_a, only_b = [x for x in a if x not in b], [x for x in b if x not in a]
    if not only_a and not only_b:
        return f"the same {len(a)} labels in another order (index: {', '.join(a)}; model: {', '.join(b)})"
    parts = []
    if only_a:
        parts.append(f"only the index has {', '.join(only_a)}")
    if only_b:
        parts.append(f"only the model has {', '.join(only_b)}")
    return f"labels differ: {'; '.join(parts)} ({len(a)} labels in the index, {len(b)} in the model)"


def mismatch_message(index_dir: str | Path, model: str | Path, diffs: Sequence[tuple[str, Any, Any]]) -> str:
    """One line naming the index, the encoder, and each differing field with both values."""
    lines = []
    for name, a, b in diffs:
        if name == "encoder_sha256":
            lines.append(f"it was built for encoder sha256 {short_sha(a)} but {model} is {short_sha(b)}")
        elif name == "labels":
            lines.append(_labels_difference(a, b))
        else:
            lines.append(f"{name} is {cut(a)} in the index but {cut(b)} in {model}")
    return f"index {index_dir} does not fit encoder {model}: " + "; ".join(lines)


def check_fits(manifest: IndexManifest, meta: ModelMeta, index_dir: str | Path) -> None:
    """Raise ArtifactMismatch when the index (``manifest`` of ``index_dir``) was not built for ``meta``."""
    diffs = differences(manifest, meta)
    if diffs:
        raise ArtifactMismatch(mismatch_message(index_dir, meta.path or "the encoder", diffs), diffs)
