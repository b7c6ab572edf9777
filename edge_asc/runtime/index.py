"""The segment index: labelled embeddings in an hnswlib graph, saved beside a manifest (numpy + hnswlib only).

An index directory holds three files (edge_asc.contract, docs/CONTRACTS.md):

* ``index.bin``: the hnswlib graph (space l2; distances are squared Euclidean), item ids 0..N-1;
* ``items.npz``: per item its label, scene, recording and segment position (edge_asc.runtime.items);
* ``manifest.json``: ``contract.IndexManifest``: the encoder's SHA-256, labels, feature settings and
  embedding size the items were computed with, the hnswlib settings, the item count, where the items came
  from, and the size and SHA-256 of the two other files.

``save`` is atomic (edge_asc.fsutil.atomic_write_dir): everything is written and fsynced in a temporary
directory beside the target, read back, and only then renamed into place (an existing index is swapped out
in one step where the system allows it, and never removed before the new one is in place). ``load`` checks
the files against the manifest and, given the encoder's metadata, refuses an index built for another
encoder with an ``ArtifactMismatch`` that names every field that differs and both values.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edge_asc.contract import (
    DEFAULT_EF,
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_M,
    DEFAULT_SEED,
    INDEX_FILE,
    ITEMS_FILE,
    MANIFEST_FILE,
    SPACE,
    ArtifactError,
    FileRecord,
    IndexManifest,
    ModelMeta,
    check_fits,
)
from edge_asc.bounded import read_text
from edge_asc.fsutil import atomic_write_dir, remove_stale_siblings
from edge_asc.runtime.items import check_file, id_table, read_items, write_items
from edge_asc.runtime.select import select_per_label

log = logging.getLogger(__name__)

ADD_CHUNK = 50_000  # items added per hnswlib call (progress is reported between calls)


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

        for name, v, low in (("M", M, 2), ("ef_construction", ef_construction, 1), ("ef", ef, 1), ("threads", threads, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        x, items = _build_items(embeddings, item_labels, scene_ids, recording_ids, positions, meta)
        n = x.shape[0]
        hnsw = hnswlib.Index(space=SPACE, dim=meta.embedding_size)
        hnsw.init_index(max_elements=n, M=int(M), ef_construction=int(ef_construction), random_seed=int(seed))
        hnsw.set_num_threads(threads)
        for start in range(0, n, ADD_CHUNK):
            stop = min(n, start + ADD_CHUNK)
            hnsw.add_items(x[start:stop], np.arange(start, stop), num_threads=threads)
            if progress is not None:
                progress(stop, n)
        manifest = IndexManifest.for_encoder(
            meta,
            M=int(M),
            ef_construction=int(ef_construction),
            ef=int(ef),
            count=n,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            dataset=dict(dataset or {}),
        )
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

    def item_source(self, item: int) -> tuple[str, str, int]:
        """(recording id, scene id, segment position in the scene) of one item."""
        item = int(item)
        return str(self._recording_table[self._recording[item]]), str(self._scene_table[self._scene[item]]), int(self.positions[item])

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
        check_fits(self.manifest, meta, where or "(in memory)")

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
        meta = self.manifest.encoder_meta()
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

    # --- files ---
    def save(self, directory: str | Path) -> Path:
        """Write the index to ``directory`` atomically (replacing an index already there); returns the path.

        The files are read back with ``load`` before they replace anything; a symbolic link at
        ``directory`` stays and the index it points to is replaced; a file, or a non-empty directory that
        holds no index, is refused."""
        target = Path(directory)
        if target.is_symlink():
            target = target.resolve()  # replace what the link points to; the link stays
        if target.exists():
            if not target.is_dir():
                raise ArtifactError(f"{target}: exists and is not a directory; not replacing it with an index")
            if not (target / MANIFEST_FILE).is_file() and any(target.iterdir()):
                raise ArtifactError(f"{target}: is a non-empty directory without {MANIFEST_FILE}; not replacing it with an index")
        atomic_write_dir(target, self._write, SegmentIndex.load)
        log.info("index of %d items written to %s", len(self), target)
        return target

    def _write(self, tmp: Path) -> None:
        """Fill the fresh directory ``tmp`` (atomic_write_dir syncs and renames it)."""
        index_path, items_path = tmp / INDEX_FILE, tmp / ITEMS_FILE
        self._hnsw.save_index(str(index_path))
        write_items(items_path, self._items())
        files = {path.name: FileRecord.of(path) for path in (index_path, items_path)}
        manifest = dataclasses.replace(self.manifest, files=files)
        (tmp / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        self.manifest = manifest

    def _items(self) -> dict[str, np.ndarray]:
        return {
            "label": self.item_labels,
            "scene": self._scene,
            "recording": self._recording,
            "position": self.positions,
            "scene_ids": self._scene_table,
            "recording_ids": self._recording_table,
        }

    @classmethod
    def load(cls, directory: str | Path, encoder_meta: ModelMeta | None = None, threads: int = 1) -> "SegmentIndex":
        """Read an index directory, checking its files against the manifest, and (given the encoder's
        metadata) that it was built for that encoder: raises ArtifactError / ArtifactMismatch naming the fault."""
        import hnswlib

        directory = Path(directory)
        manifest_path = directory / MANIFEST_FILE
        if not directory.is_dir():
            raise ArtifactError(f"index {directory}: not found (no such directory)")
        remove_stale_siblings(directory)  # temporary directories of killed builds (only ours, only dead writers')
        text = read_text(manifest_path, ArtifactError, "index manifest")  # bounded: size, UTF-8
        manifest = IndexManifest.from_json(text, str(manifest_path))
        if encoder_meta is not None:
            check_fits(manifest, encoder_meta, directory)
        for name in (INDEX_FILE, ITEMS_FILE):
            check_file(directory / name, manifest.files.get(name))
        items = read_items(directory / ITEMS_FILE, manifest)
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


def _build_items(
    embeddings: np.ndarray,
    item_labels: Sequence[int] | np.ndarray,
    scene_ids: Sequence[Any] | np.ndarray,
    recording_ids: Sequence[Any] | np.ndarray,
    positions: Sequence[int] | np.ndarray | None,
    meta: ModelMeta,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Check ``SegmentIndex.build``'s arguments: -> (embeddings (N, D) float32, the item table)."""
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
    labels = np.asarray(item_labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"item_labels must be ({n},) integers, got {labels.shape} {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= len(meta.labels):
        raise ValueError(f"item_labels must lie in 0..{len(meta.labels) - 1} (the encoder's {len(meta.labels)} labels)")
    scene_table, scene = id_table(scene_ids, "scene_ids", n)
    recording_table, recording = id_table(recording_ids, "recording_ids", n)
    pos = np.zeros(n, dtype=np.int64) if positions is None else np.asarray(positions, dtype=np.int64)
    if pos.shape != (n,):
        raise ValueError(f"positions must have one entry per embedding ({n}), got shape {pos.shape}")
    items = {"label": labels, "scene": scene, "recording": recording, "position": pos,
             "scene_ids": scene_table, "recording_ids": recording_table}
    return x, items


# --- embedding many segments --------------------------------------------------------------------------


def embed_features(encoder: Any, features: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """features (N, frames, n_features) -> (N, D) float32 embeddings, ``batch_size`` segments per run."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = features.shape[0]
    out = np.empty((n, encoder.meta.embedding_size), dtype=np.float32)
    for start in range(0, n, batch_size):
        out[start : start + batch_size] = encoder.embed(features[start : start + batch_size])  # (b, D)
    return out
