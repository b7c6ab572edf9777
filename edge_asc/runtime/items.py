"""The item table of an index directory (``items.npz``) and the size/SHA-256 check of its files (numpy only).

Per item: its label (index into the manifest's labels), scene and recording (indices into the
``scene_ids`` / ``recording_ids`` tables stored beside them) and its segment position in the scene; the
array names are ``edge_asc.contract.ITEM_ARRAYS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_asc.contract import ITEM_ARRAYS, ArtifactError, FileRecord, IndexManifest, file_sha256, short_sha

PER_ITEM = ("label", "scene", "recording", "position")  # (N,) int64 arrays; the other two are id tables


def id_table(values: Sequence[Any] | np.ndarray, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item ids -> (unique ids as a plain array, (n,) int64 index into them)."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per embedding ({n}), got shape {arr.shape}")
    if arr.dtype == object:
        arr = arr.astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return uniq, inverse.astype(np.int64)


def write_items(path: Path, items: Mapping[str, np.ndarray]) -> None:
    """Write the ``ITEM_ARRAYS`` of ``items`` to ``path`` (npz, no pickles)."""
    with open(path, "wb") as f:
        np.savez(f, **{name: items[name] for name in ITEM_ARRAYS})


def read_items(path: Path, manifest: IndexManifest) -> dict[str, np.ndarray]:
    """Read and check the item table against the manifest's count and labels."""
    try:
        with np.load(path, allow_pickle=False) as z:
            items = {name: z[name] for name in ITEM_ARRAYS if name in z.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read item table ({exc})") from exc
    missing = [name for name in ITEM_ARRAYS if name not in items]
    if missing:
        raise ArtifactError(f"{path}: has no {', '.join(missing)}")
    n = manifest.count
    for name in PER_ITEM:
        if items[name].shape != (n,) or not np.issubdtype(items[name].dtype, np.integer):
            raise ArtifactError(f"{path}: {name} must be ({n},) integers, got {items[name].shape} {items[name].dtype}")
        items[name] = items[name].astype(np.int64)
    for name, table in (("label", len(manifest.labels)), ("scene", len(items["scene_ids"])), ("recording", len(items["recording_ids"]))):
        if n and (items[name].min() < 0 or items[name].max() >= table):
            raise ArtifactError(f"{path}: {name} values outside 0..{table - 1}")
    return items


def check_file(path: Path, expected: FileRecord | None) -> None:
    """Refuse a file that is missing, unlisted, or whose size or SHA-256 differs from the manifest's record."""
    if not path.is_file():
        raise ArtifactError(f"{path}: missing from the index directory")
    if expected is None:
        raise ArtifactError(f"{path}: not listed in the manifest's files")
    size = path.stat().st_size
    if size != expected.bytes:
        raise ArtifactError(f"{path}: {size} bytes, the manifest says {expected.bytes} (truncated or replaced?)")
    digest = file_sha256(path)
    if digest != expected.sha256:
        raise ArtifactError(f"{path}: sha256 {short_sha(digest)} differs from the manifest's {short_sha(expected.sha256)}")
