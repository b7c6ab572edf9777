"""The item table of an index directory: garbage with a matching manifest is one ArtifactError, in bounded memory."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from edge_asc.contract import ITEM_ARRAYS, ArtifactError
from edge_asc.runtime.items import load_npz


def _npy(header: dict, payload: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload  # the header writer writes the magic too


def _npz(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return path


def test_arrays_written_by_savez_are_read_back(tmp_path):
    path = tmp_path / "ok.npz"
    np.savez(path, label=np.arange(5), scene_ids=np.array(["a", "b"]))
    arrays = load_npz(path, ITEM_ARRAYS, "item table")
    assert arrays["label"].tolist() == [0, 1, 2, 3, 4] and arrays["scene_ids"].tolist() == ["a", "b"]


def test_random_bytes_are_refused_in_one_line(tmp_path):
    path = tmp_path / "items.npz"
    path.write_bytes(np.random.default_rng(0).bytes(10_000))
    with pytest.raises(ArtifactError, match=r"items.npz: cannot read item table \(BadZipFile") as info:
        load_npz(path, ITEM_ARRAYS, "item table")
    assert "\n" not in str(info.value)


def test_a_header_claiming_more_than_the_member_holds_is_refused_before_allocating(tmp_path):
    # 10^12 int64 would be 8 TB: numpy would allocate it before reading a byte
    path = _npz(tmp_path / "items.npz", {"label": _npy({"descr": "<i8", "fortran_order": False, "shape": (10**12,)}, b"\0" * 64)})
    with pytest.raises(ArtifactError, match=r"member 'label.npy' claims \(1000000000000,\) int64, more than its \d+ bytes hold"):
        load_npz(path, ITEM_ARRAYS, "item table")


def test_a_compressed_member_is_refused_no_zip_bomb(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros(1000, np.int64))
    path = _npz(tmp_path / "items.npz", {"label": buf.getvalue()}, zipfile.ZIP_DEFLATED)
    with pytest.raises(ArtifactError, match="member 'label.npy' is compressed"):
        load_npz(path, ITEM_ARRAYS, "item table")


def test_pickled_objects_are_refused(tmp_path):
    path = _npz(tmp_path / "items.npz", {"scene_ids": _npy({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 64)})
    with pytest.raises(ArtifactError, match="claims .* object"):
        load_npz(path, ITEM_ARRAYS, "item table")
