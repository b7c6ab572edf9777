"""Index a dataset: embed every 300 ms segment of its scenes with the ONNX encoder and build a SegmentIndex.

This is the training side of the index (it reads datasets); the runtime only loads, queries and saves an
index (edge_asc.runtime.index).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edge_asc.contract import DEFAULT_EF, DEFAULT_EF_CONSTRUCTION, DEFAULT_M, ModelMeta
from edge_asc.runtime.index import SegmentIndex, embed_features
from edge_asc.runtime.select import select_per_label
from edge_asc.training.extract import cached_segments
from edge_asc.training.feature_cache import FeatureCache

log = logging.getLogger(__name__)


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


def _file_groups(dataset: Any, indices: Sequence[int], scenes_per_group: int) -> list[list[int]]:
    """Scene indices in groups of whole files (each file is decoded once), about ``scenes_per_group`` each."""
    by_file: dict[Any, list[int]] = {}
    for i in indices:
        by_file.setdefault(dataset.scenes[i].path, []).append(i)
    groups: list[list[int]] = [[]]
    for scenes in by_file.values():
        if groups[-1] and len(groups[-1]) + len(scenes) > scenes_per_group:
            groups.append([])
        groups[-1].extend(scenes)
    return [g for g in groups if g]


def _embed_scenes(
    encoder: Any, dataset: Any, indices: list[int], to_model: np.ndarray, batch_size: int, scenes_per_group: int,
    cache: FeatureCache, workers: int,
) -> tuple[np.ndarray, ...]:
    """Every segment of the scenes at ``indices``: embeddings (N, D), model class ids, scene ids, recording ids
    and positions (N,) each; clean features come from ``cache`` a group of files at a time, only embeddings are kept."""
    scene_names = np.array([s.scene_id for s in dataset.scenes])
    recording_names = np.array(dataset.recording_ids)
    parts: dict[str, list[np.ndarray]] = {"emb": [], "label": [], "scene": [], "recording": [], "position": []}
    done = 0
    for group in _file_groups(dataset, indices, scenes_per_group):
        segs = cached_segments(dataset, group, cache, encoder.meta.feature_config, workers)  # features (n, frames, n_features)
        parts["emb"].append(embed_features(encoder, segs.features, batch_size))  # (n, D)
        parts["label"].append(to_model[segs.labels])
        parts["scene"].append(scene_names[segs.scene])
        parts["recording"].append(recording_names[segs.recording])
        parts["position"].append(segs.position)
        done += len(group)
        log.info("embedded %d of %d scenes (%d segments so far)", done, len(indices), sum(len(p) for p in parts["label"]))
    return tuple(np.concatenate(parts[k]) for k in ("emb", "label", "scene", "recording", "position"))


def build_index_from_dataset(
    encoder: Any,
    dataset: Any,
    scene_indices: Sequence[int] | np.ndarray | None = None,
    *,
    M: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef: int = DEFAULT_EF,
    max_items_per_label: int | None = None,
    seed: int = 0,
    batch_size: int = 512,
    threads: int = 1,
    scenes_per_group: int = 64,
    cache: FeatureCache | None = None,
    workers: int = 1,
) -> SegmentIndex:
    """Embed every 300 ms segment of the given scenes (all when None) with the ONNX ``encoder``
    (an ``edge_asc.runtime.encoder.Encoder``) and index them.

    Features are the clean features of ``FeatureExtractor(encoder.meta.feature_config)``, read from the
    feature ``cache`` (a training run's, when it used the same settings; None: in memory only) or extracted
    in ``workers`` processes, so the items are what the daemon computes for the same audio. Scenes are taken
    a group of files at a time; only embeddings are kept. ``max_items_per_label`` keeps at most that many
    items per label (round-robin over recordings, see ``select_per_label``) before the graph is built.
    (Over 60 lines only by its keyword signature, the index settings that build-index passes through.)
    """
    meta: ModelMeta = encoder.meta
    if dataset.sample_rate != meta.feature_config.sample_rate:
        raise ValueError(
            f"dataset {dataset.root} was loaded at {dataset.sample_rate} Hz but encoder {meta.path} "
            f"takes features at {meta.feature_config.sample_rate} Hz"
        )
    indices = list(range(len(dataset.scenes))) if scene_indices is None else [int(i) for i in scene_indices]
    if not indices:
        raise ValueError("no scenes to index")
    model_label = {name: i for i, name in enumerate(meta.labels)}
    unknown = sorted({dataset.scenes[i].label for i in indices} - set(model_label))
    if unknown:
        raise ValueError(f"dataset {dataset.root} has labels the encoder {meta.path} was not trained on: {', '.join(unknown)}")
    to_model = np.array([model_label.get(name, -1) for name in dataset.labels], dtype=np.int64)  # dataset -> model class id
    emb, labels, scenes, recordings, positions = _embed_scenes(
        encoder, dataset, indices, to_model, batch_size, scenes_per_group, cache if cache is not None else FeatureCache.disabled(), workers
    )
    if emb.shape[0] == 0:
        raise ValueError(f"dataset {dataset.root}: the selected scenes hold no complete segment")
    info: dict[str, Any] = {
        "root": " + ".join(str(r) for r in dataset.roots) if dataset.roots else str(dataset.root),
        "layout": dataset.layout,
        "chunk_seconds": dataset.chunk_seconds,
        "scenes": len(indices),
        "scenes_in_dataset": len(dataset.scenes),
        "recordings": int(np.unique(recordings).shape[0]),
        "segments": int(emb.shape[0]),
        "skipped_files": [str(p) for p, _ in dataset.skipped],  # unreadable when listed or when decoded
    }
    if max_items_per_label is not None:
        _, rec_index = np.unique(recordings, return_inverse=True)
        keep = select_per_label(labels, rec_index, max_items_per_label, seed)
        info["subsample"] = {"max_items_per_label": int(max_items_per_label), "seed": int(seed), "from_count": int(emb.shape[0])}
        emb, labels, scenes, recordings, positions = emb[keep], labels[keep], scenes[keep], recordings[keep], positions[keep]
    info["per_label"] = {name: int(c) for name, c in zip(meta.labels, np.bincount(labels, minlength=len(meta.labels)))}
    log.info("building the hnswlib graph of %d items (M=%d, ef_construction=%d)", emb.shape[0], M, ef_construction)
    return SegmentIndex.build(
        emb, labels, scenes, recordings, meta, M=M, ef_construction=ef_construction, ef=ef,
        positions=positions, dataset=info, threads=threads,
    )
