"""The segment index: labelled embeddings in an hnswlib graph, saved beside a manifest (numpy + hnswlib only).

An index directory holds three files (docs/CONTRACTS.md):

* ``index.bin``: the hnswlib graph (space l2; distances are squared Euclidean), item ids 0..N-1;
* ``items.npz``: per item its label (index into the manifest's labels), scene and recording (indices into
  the ``scene_ids`` / ``recording_ids`` tables stored beside them), and its segment position in the scene;
* ``manifest.json``: the encoder's SHA-256, labels, feature settings and embedding size the items were
  computed with, the hnswlib settings, the item count, where the items came from, and the size and
  SHA-256 of the two other files.

``save`` is atomic: everything is written and fsynced in a temporary directory beside the target, read
back, and only then renamed into place (an existing index is swapped out in one step where the system
allows it, and never removed before the new one is in place). ``load`` checks the files against the
manifest and, given the encoder's metadata, refuses an index built for another encoder with an
``ArtifactMismatch`` that names every field that differs and both values.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edge_asc.runtime.encoder import ArtifactError, ModelMeta, file_sha256

log = logging.getLogger(__name__)

FORMAT = 1
SPACE = "l2"
INDEX_FILE = "index.bin"
ITEMS_FILE = "items.npz"
MANIFEST_FILE = "manifest.json"
ITEM_ARRAYS = ("label", "scene", "recording", "position", "scene_ids", "recording_ids")

# hnswlib settings, measured by bench/bench_encoder_index.py (D = 129, one thread, single queries): recall@1
# against exact search 1.000 on ambient13's segments (12k items, 0.03 ms), 0.998 at 100k and 0.994 at 1M random
# vectors on a 16-dimensional structure (0.16 / 0.27 ms median on the shared 2-core machine). iid Gaussian vectors
# reach 0.99 at no usable ef (0.63 at ef 512, 1M): their nearest neighbour is barely nearer than any other item.
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF = 64
DEFAULT_SEED = 100
ADD_CHUNK = 50_000  # items added per hnswlib call (progress is reported between calls)


@dataclass(frozen=True)
class IndexConfig:
    """How ``edge-asc build-index`` builds an index (YAML section ``index:``)."""

    M: int = DEFAULT_M  # hnswlib links per node
    ef_construction: int = DEFAULT_EF_CONSTRUCTION  # hnswlib build breadth
    ef: int = DEFAULT_EF  # search breadth stored in the manifest (the daemon may override it)
    max_per_label: int | None = None  # keep at most this many segments per label (None: all)
    seed: int = 0  # for max_per_label
    batch_size: int = 512  # segments per ONNX run
    threads: int = 1  # ONNX Runtime and hnswlib threads

    def __post_init__(self) -> None:
        if self.M < 2 or self.ef_construction < 1 or self.ef < 1:
            raise ValueError(f"need M >= 2, ef_construction >= 1 and ef >= 1, got {self.M}, {self.ef_construction}, {self.ef}")
        if self.max_per_label is not None and self.max_per_label < 1:
            raise ValueError(f"max_per_label must be positive (or null for all), got {self.max_per_label}")
        if self.batch_size < 1 or self.threads < 1:
            raise ValueError(f"batch_size and threads must be positive, got {self.batch_size}, {self.threads}")


class ArtifactMismatch(ArtifactError):
    """An index that was not built for the encoder it is used with; ``differences`` lists each field."""

    def __init__(self, message: str, differences: Sequence[tuple[str, Any, Any]]) -> None:
        super().__init__(message)
        self.differences = list(differences)  # (field, index value, encoder value)


# --- the manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexManifest:
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
    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> {"bytes", "sha256"}
    format: int = FORMAT
    space: str = SPACE

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> "IndexManifest":
        if not isinstance(raw, dict):
            raise ArtifactError(f"{where}: manifest must be a JSON object, got {type(raw).__name__}")
        fmt = raw.get("format")
        if fmt != FORMAT:
            raise ArtifactError(f"{where}: manifest format {fmt!r} is not supported (this edge-asc reads format {FORMAT})")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in raw and n not in ("encoder_file", "dataset", "files"))
        if missing:
            raise ArtifactError(f"{where}: manifest has no {', '.join(missing)}")
        unknown = sorted(set(raw) - names)
        if unknown:
            log.warning("%s: manifest keys not understood by this edge-asc: %s", where, ", ".join(unknown))
        if raw["space"] != SPACE:
            raise ArtifactError(f"{where}: manifest space {raw['space']!r} is not supported (only {SPACE!r})")
        for key in ("embedding_size", "M", "ef_construction", "ef", "count"):
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "count" else 1):
                raise ArtifactError(f"{where}: manifest {key} must be a positive integer, got {v!r}")
        labels = raw["labels"]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ArtifactError(f"{where}: manifest labels must be a list of names, got {labels!r}")
        if not isinstance(raw["features"], dict):
            raise ArtifactError(f"{where}: manifest features must be an object, got {raw['features']!r}")
        return cls(**{k: (tuple(v) if k == "labels" else v) for k, v in raw.items() if k in names})


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


def _short(sha: str) -> str:
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
    lines = []
    for name, a, b in diffs:
        if name == "encoder_sha256":
            lines.append(f"it was built for encoder sha256 {_short(a)} but {model} is {_short(b)}")
        elif name == "labels":
            lines.append(_labels_difference(a, b))
        else:
            lines.append(f"{name} is {a!r} in the index but {b!r} in {model}")
    return f"index {index_dir} does not fit encoder {model}: " + "; ".join(lines)


# --- atomic directory writes ------------------------------------------------------------------------


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # systems that cannot open a directory (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # directories without fsync support
            raise
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _sibling(target: Path, kind: str) -> Path:
    """An unused hidden name beside ``target`` (``.<name>.<kind>-<pid>-<random>``)."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _replace_dir(new: Path, target: Path) -> None:
    """Put the complete directory ``new`` at ``target``; an existing ``target`` is removed only afterwards."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new)  # now holds the previous index
        return
    old = _sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)  # put the previous index back
        raise
    shutil.rmtree(old)


# --- reduction ---------------------------------------------------------------------------------------


def select_per_label(labels: np.ndarray, recordings: np.ndarray, max_items_per_label: int, seed: int = 0) -> np.ndarray:
    """Sorted item indices keeping at most ``max_items_per_label`` items of each label.

    labels, recordings: (N,) int64. Within a label, items are drawn round-robin over its recordings (a
    random item of each recording in turn, seeded), so every recording keeps a share.
    """
    if isinstance(max_items_per_label, bool) or not isinstance(max_items_per_label, (int, np.integer)) or max_items_per_label < 1:
        raise ValueError(f"max_items_per_label must be a positive integer, got {max_items_per_label!r}")
    labels, recordings = np.asarray(labels, dtype=np.int64), np.asarray(recordings, dtype=np.int64)
    n = labels.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    shuffle = np.random.default_rng(seed).permutation(n)
    # rank of each item among the items of its (label, recording), in shuffled order
    order = shuffle[np.lexsort((recordings[shuffle], labels[shuffle]))]
    group = labels[order] * (int(recordings.max()) + 1) + recordings[order]
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    # per label: lowest ranks first (one item of each recording, then a second...), ties in shuffled order
    tiebreak = np.empty(n, dtype=np.int64)
    tiebreak[shuffle] = np.arange(n)
    by_label = np.lexsort((tiebreak, rank, labels))
    label_sorted = labels[by_label]
    first = np.searchsorted(label_sorted, label_sorted, side="left")
    return np.sort(by_label[np.arange(n) - first < max_items_per_label]).astype(np.int64)


# --- the index --------------------------------------------------------------------------------------


def _table(values: Sequence[Any] | np.ndarray, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item ids -> (unique ids as a plain array, (n,) int64 index into them)."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per embedding ({n}), got shape {arr.shape}")
    if arr.dtype == object:
        arr = arr.astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return uniq, inverse.astype(np.int64)


class SegmentIndex:
    """Labelled segment embeddings searchable by nearest neighbour (hnswlib, squared L2).

    ``query`` returns, per query row, the ``k`` nearest items' labels, squared distances and item ids; the
    item tables (``item_labels``, ``scene_ids``, ``recording_ids``, ``positions``) are indexed by item id.
    """

    def __init__(self, hnsw: Any, items: Mapping[str, np.ndarray], manifest: IndexManifest, threads: int = 1) -> None:
        self._hnsw = hnsw
        self.item_labels: np.ndarray = items["label"]  # (N,) int64 index into manifest.labels
        self._scene = items["scene"]
        self._recording = items["recording"]
        self.positions: np.ndarray = items["position"]  # (N,) int64 segment index within its scene
        self._scene_table = items["scene_ids"]
        self._recording_table = items["recording_ids"]
        self.manifest = manifest
        self.threads = threads
        hnsw.set_ef(manifest.ef)
        hnsw.set_num_threads(threads)

    # --- building ---
    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        item_labels: Sequence[int] | np.ndarray,
        scene_ids: Sequence[Any] | np.ndarray,
        recording_ids: Sequence[Any] | np.ndarray,
        meta: ModelMeta,
        M: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef: int = DEFAULT_EF,
        *,
        positions: Sequence[int] | np.ndarray | None = None,
        dataset: Mapping[str, Any] | None = None,
        threads: int = 1,
        seed: int = DEFAULT_SEED,
        progress: Callable[[int, int], None] | None = None,
    ) -> "SegmentIndex":
        """Index ``embeddings`` (N, D) computed by the encoder described by ``meta``.

        item_labels: (N,) class ids, indices into ``meta.labels``; scene_ids / recording_ids: (N,) names
        or numbers of each item's scene and recording; positions: (N,) segment index within the scene.
        ``progress(done, total)`` is called after each chunk of items is added.
        """
        import hnswlib

        x = np.asarray(embeddings)
        if x.ndim != 2 or x.shape[1] != meta.embedding_size:
            raise ValueError(f"embeddings must be (N, {meta.embedding_size}) for this encoder, got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"embeddings must be floating point, got {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)  # (N, D)
        n = x.shape[0]
        if n == 0:
            raise ValueError("cannot build an index without embeddings")
        if not np.isfinite(x).all():
            raise ValueError("embeddings contain NaN or infinite values")
        for name, v, low in (("M", M, 2), ("ef_construction", ef_construction, 1), ("ef", ef, 1), ("threads", threads, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        labels = np.asarray(item_labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"item_labels must be ({n},) integers, got {labels.shape} {labels.dtype}")
        labels = labels.astype(np.int64)
        if labels.min() < 0 or labels.max() >= len(meta.labels):
            raise ValueError(f"item_labels must lie in 0..{len(meta.labels) - 1} (the encoder's {len(meta.labels)} labels)")
        scene_table, scene = _table(scene_ids, "scene_ids", n)
        recording_table, recording = _table(recording_ids, "recording_ids", n)
        pos = np.zeros(n, dtype=np.int64) if positions is None else np.asarray(positions, dtype=np.int64)
        if pos.shape != (n,):
            raise ValueError(f"positions must have one entry per embedding ({n}), got shape {pos.shape}")

        hnsw = hnswlib.Index(space=SPACE, dim=meta.embedding_size)
        hnsw.init_index(max_elements=n, M=int(M), ef_construction=int(ef_construction), random_seed=int(seed))
        hnsw.set_num_threads(threads)
        for start in range(0, n, ADD_CHUNK):
            stop = min(n, start + ADD_CHUNK)
            hnsw.add_items(x[start:stop], np.arange(start, stop), num_threads=threads)
            if progress is not None:
                progress(stop, n)
        manifest = IndexManifest(
            encoder_sha256=meta.sha256,
            labels=tuple(meta.labels),
            features=meta.feature_config.to_dict(),
            embedding_size=meta.embedding_size,
            M=int(M),
            ef_construction=int(ef_construction),
            ef=int(ef),
            count=n,
            variant=meta.variant,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            encoder_file=Path(meta.path).name if meta.path else "",
            dataset=dict(dataset or {}),
        )
        items = {
            "label": labels,
            "scene": scene,
            "recording": recording,
            "position": pos,
            "scene_ids": scene_table,
            "recording_ids": recording_table,
        }
        return cls(hnsw, items, manifest, threads=threads)

    # --- what it holds ---
    def __len__(self) -> int:
        return self.manifest.count

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest.labels)

    @property
    def ef(self) -> int:
        return self.manifest.ef

    @property
    def scene_ids(self) -> np.ndarray:
        """(N,) scene id of every item."""
        return self._scene_table[self._scene]

    @property
    def recording_ids(self) -> np.ndarray:
        """(N,) recording id of every item."""
        return self._recording_table[self._recording]

    def vectors(self, ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(n, D) float32 stored embeddings of the given item ids (all items when None)."""
        ids = np.arange(len(self)) if ids is None else np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.zeros((0, self.manifest.embedding_size), dtype=np.float32)
        return np.asarray(self._hnsw.get_items(ids, return_type="numpy"), dtype=np.float32)

    def counts(self) -> dict[str, int]:
        """Items per label name."""
        c = np.bincount(self.item_labels, minlength=len(self.labels))
        return {name: int(c[i]) for i, name in enumerate(self.labels)}

    def check(self, meta: ModelMeta, where: str | Path = "") -> None:
        """Raise ArtifactMismatch naming every field where this index and the encoder ``meta`` differ."""
        diffs = differences(self.manifest, meta)
        if diffs:
            model = meta.path or "the encoder"
            raise ArtifactMismatch(mismatch_message(where or "(in memory)", model, diffs), diffs)

    # --- searching ---
    def set_ef(self, ef: int) -> None:
        """Search breadth: larger is slower and finds the true nearest neighbour more often."""
        if isinstance(ef, bool) or not isinstance(ef, (int, np.integer)) or ef < 1:
            raise ValueError(f"ef must be a positive integer, got {ef!r}")
        self._hnsw.set_ef(int(ef))
        self.manifest = dataclasses.replace(self.manifest, ef=int(ef))

    def set_threads(self, threads: int) -> None:
        """Threads hnswlib uses per query call (one query row runs on one thread whatever this is)."""
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self.threads = int(threads)
        self._hnsw.set_num_threads(self.threads)

    def query(self, embeddings: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """embeddings (B, D) -> labels (B, k) int64, squared L2 distances (B, k) float32, item ids (B, k) int64.

        Row j of each result lists the j-th query's neighbours, nearest first.
        """
        x = np.asarray(embeddings)
        d = self.manifest.embedding_size
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"query embeddings must be (B, {d}), got {x.shape}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self):
            raise ValueError(f"k must be between 1 and the index size ({len(self)}), got {k!r}")
        x = np.ascontiguousarray(x, dtype=np.float32)  # (B, D)
        if not np.isfinite(x).all():
            raise ValueError("query embeddings contain NaN or infinite values")
        ids, dist = self._hnsw.knn_query(x, k=int(k), num_threads=self.threads)  # (B, k) uint64, (B, k) float32
        ids = ids.astype(np.int64)
        return self.item_labels[ids], np.asarray(dist, dtype=np.float32), ids

    # --- reduction ---
    def subsample(
        self,
        max_items_per_label: int,
        seed: int = 0,
        M: int | None = None,
        ef_construction: int | None = None,
    ) -> "SegmentIndex":
        """A new index keeping at most ``max_items_per_label`` items of each label.

        Within a label, items are drawn round-robin over its recordings (a random item of each recording
        in turn, seeded), so every recording keeps a share; items are re-added in their original order.
        """
        keep = select_per_label(self.item_labels, self._recording, max_items_per_label, seed)
        n = len(self)
        meta = self._meta()
        dataset = dict(self.manifest.dataset)
        dataset["subsample"] = {"max_items_per_label": int(max_items_per_label), "seed": int(seed), "from_count": n}
        return SegmentIndex.build(
            self.vectors(keep),
            self.item_labels[keep],
            self.scene_ids[keep],
            self.recording_ids[keep],
            meta,
            M=self.manifest.M if M is None else M,
            ef_construction=self.manifest.ef_construction if ef_construction is None else ef_construction,
            ef=self.manifest.ef,
            positions=self.positions[keep],
            dataset=dataset,
            threads=self.threads,
        )

    def _meta(self) -> ModelMeta:
        """The encoder description this index was built for (enough to build a derived index)."""
        from edge_asc.dsp.features import FeatureConfig

        m = self.manifest
        return ModelMeta(
            labels=tuple(m.labels),
            feature_config=FeatureConfig.from_dict(m.features),
            embedding_size=m.embedding_size,
            variant=m.variant,
            version="",
            format=1,
            sha256=m.encoder_sha256,
            path=m.encoder_file,
        )

    # --- files ---
    def save(self, directory: str | Path) -> Path:
        """Write the index to ``directory`` atomically (replacing an index already there); returns the path."""
        target = Path(directory)
        if target.is_symlink():
            target = target.resolve()  # replace what the link points to; the link stays
        if target.exists():
            if not target.is_dir():
                raise ArtifactError(f"{target}: exists and is not a directory; not replacing it with an index")
            if not (target / MANIFEST_FILE).is_file() and any(target.iterdir()):
                raise ArtifactError(f"{target}: is a non-empty directory without {MANIFEST_FILE}; not replacing it with an index")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(target, "tmp")
        os.mkdir(tmp)  # mode 0o777 less the umask, as the directory it will become
        try:
            self._write(tmp)
            SegmentIndex.load(tmp)  # read everything back before it replaces anything
            _replace_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(target.parent)
        log.info("index of %d items written to %s", len(self), target)
        return target

    def _write(self, tmp: Path) -> None:
        index_path, items_path = tmp / INDEX_FILE, tmp / ITEMS_FILE
        self._hnsw.save_index(str(index_path))
        with open(items_path, "wb") as f:
            np.savez(
                f,
                label=self.item_labels,
                scene=self._scene,
                recording=self._recording,
                position=self.positions,
                scene_ids=self._scene_table,
                recording_ids=self._recording_table,
            )
        files = {}
        for path in (index_path, items_path):
            _fsync_file(path)
            files[path.name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        manifest = dataclasses.replace(self.manifest, files=files)
        text = json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n"
        with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        self.manifest = manifest

    @classmethod
    def load(cls, directory: str | Path, encoder_meta: ModelMeta | None = None, threads: int = 1) -> "SegmentIndex":
        """Read an index directory, checking its files against the manifest, and (given the encoder's
        metadata) that it was built for that encoder: raises ArtifactError / ArtifactMismatch naming the fault."""
        import hnswlib

        directory = Path(directory)
        manifest_path = directory / MANIFEST_FILE
        if not directory.is_dir():
            raise ArtifactError(f"index {directory}: not found (no such directory)")
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ArtifactError(f"index {directory}: cannot read {MANIFEST_FILE} ({exc.strerror or exc})") from exc
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from exc
        manifest = IndexManifest.from_dict(raw, str(manifest_path))
        if encoder_meta is not None:
            diffs = differences(manifest, encoder_meta)
            if diffs:
                raise ArtifactMismatch(mismatch_message(directory, encoder_meta.path or "the encoder", diffs), diffs)
        for name in (INDEX_FILE, ITEMS_FILE):
            _check_file(directory / name, manifest.files.get(name))
        items = _read_items(directory / ITEMS_FILE, manifest)
        hnsw = hnswlib.Index(space=SPACE, dim=manifest.embedding_size)
        try:
            hnsw.load_index(str(directory / INDEX_FILE), max_elements=manifest.count)
        except RuntimeError as exc:
            raise ArtifactError(f"{directory / INDEX_FILE}: cannot load the hnswlib index ({exc})") from exc
        if hnsw.get_current_count() != manifest.count:
            raise ArtifactError(
                f"{directory / INDEX_FILE}: holds {hnsw.get_current_count()} items, the manifest says {manifest.count}"
            )
        return cls(hnsw, items, manifest, threads=threads)


def _check_file(path: Path, expected: Mapping[str, Any] | None) -> None:
    if not path.is_file():
        raise ArtifactError(f"{path}: missing from the index directory")
    if expected is None:
        raise ArtifactError(f"{path}: not listed in the manifest's files")
    size = path.stat().st_size
    if size != expected.get("bytes"):
        raise ArtifactError(f"{path}: {size} bytes, the manifest says {expected.get('bytes')} (truncated or replaced?)")
    digest = file_sha256(path)
    if digest != expected.get("sha256"):
        raise ArtifactError(f"{path}: sha256 {_short(digest)} differs from the manifest's {_short(str(expected.get('sha256')))}")


def _read_items(path: Path, manifest: IndexManifest) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            items = {name: z[name] for name in ITEM_ARRAYS if name in z.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read item table ({exc})") from exc
    missing = [name for name in ITEM_ARRAYS if name not in items]
    if missing:
        raise ArtifactError(f"{path}: has no {', '.join(missing)}")
    n = manifest.count
    for name in ("label", "scene", "recording", "position"):
        if items[name].shape != (n,) or not np.issubdtype(items[name].dtype, np.integer):
            raise ArtifactError(f"{path}: {name} must be ({n},) integers, got {items[name].shape} {items[name].dtype}")
        items[name] = items[name].astype(np.int64)
    for name, table in (("label", len(manifest.labels)), ("scene", len(items["scene_ids"])), ("recording", len(items["recording_ids"]))):
        if n and (items[name].min() < 0 or items[name].max() >= table):
            raise ArtifactError(f"{path}: {name} values outside 0..{table - 1}")
    return items


# --- building from labelled recordings ----------------------------------------------------------------


def embed_features(encoder: Any, features: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """features (N, frames, n_features) -> (N, D) float32 embeddings, ``batch_size`` segments per run."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = features.shape[0]
    out = np.empty((n, encoder.meta.embedding_size), dtype=np.float32)
    for start in range(0, n, batch_size):
        out[start : start + batch_size] = encoder.embed(features[start : start + batch_size])  # (b, D)
    return out
