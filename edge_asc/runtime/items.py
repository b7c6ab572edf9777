"""The item table of an index directory (``items.npz``) and the size/SHA-256 check of its files (numpy only).

Per item: its label (index into the manifest's labels), scene and recording (indices into the
``scene_ids`` / ``recording_ids`` tables stored beside them) and its segment position in the scene; the
array names are ``edge_asc.contract.ITEM_ARRAYS``.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_asc.bounded import cut, one_line
from edge_asc.contract import ITEM_ARRAYS, ArtifactError, FileRecord, IndexManifest, file_sha256, short_sha

PER_ITEM = ("label", "scene", "recording", "position")  # (N,) int64 arrays; the other two are id tables
NPY_HEADER_LIMIT = 10000  # bytes of a .npy header (numpy's own default limit)
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


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


def load_npz(path: Path, names: Sequence[str], what: str) -> dict[str, np.ndarray]:
    """The arrays ``names`` (those present) of an npz file written by np.savez, read with bounded memory.

    Before anything is allocated, every member must be stored uncompressed (np.savez's way: no zip bomb)
    and its .npy header must describe plain numbers (no pickled objects) that fit in the member's bytes
    (numpy allocates what the header claims before reading). Anything else, or a file that is not a zip
    of .npy arrays, is an ArtifactError naming ``path``: one line, whatever the garbage.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ArtifactError(f"{path}: {what}: member {cut(info.filename)} is compressed (np.savez stores arrays uncompressed)")
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = _NPY_HEADERS.get(version)
                    if read_header is None:
                        raise ArtifactError(f"{path}: {what}: member {cut(info.filename)} has .npy format {version}, not 1.0 or 2.0")
                    shape, _, dtype = read_header(member, max_header_size=NPY_HEADER_LIMIT)
                if dtype.hasobject or math.prod(shape) * dtype.itemsize > info.file_size:
                    raise ArtifactError(f"{path}: {what}: member {cut(info.filename)} claims {shape} {dtype}, more than its {info.file_size} bytes hold")
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in names if name in z.files}
    except ArtifactError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError... by where the garbage is
        raise ArtifactError(f"{path}: cannot read {what} ({one_line(f'{type(exc).__name__}: {exc}', 160)})") from None


def read_items(path: Path, manifest: IndexManifest) -> dict[str, np.ndarray]:
    """Read and check the item table against the manifest's count and labels."""
    items = load_npz(path, ITEM_ARRAYS, "item table")
    missing = [name for name in ITEM_ARRAYS if name not in items]
    if missing:
        raise ArtifactError(f"{path}: has no {', '.join(missing)}")
    n = manifest.count
    for name in PER_ITEM:
        if items[name].shape != (n,) or not np.issubdtype(items[name].dtype, np.integer):
            raise ArtifactError(f"{path}: {name} must be ({n},) integers, got {items[name].shape} {items[name].dtype}")
        items[name] = items[name].astype(np.int64)
    for name in ("scene_ids", "recording_ids"):
        if items[name].ndim != 1 or (items[name].size == 0 and n):
            raise ArtifactError(f"{path}: {name} must be a non-empty list of ids, got shape {items[name].shape}")
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
