"""edge_asc.fsutil: the one atomic-write implementation (files and directories)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_asc import fsutil


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_a_written_file_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "a" / "out.txt"
    fsutil.atomic_write_text(target, "first")
    fsutil.atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert _leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    fsutil.atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with fsutil.atomic_open(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed half-way")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_writer_that_needs_a_name_gets_a_temporary_sibling(tmp_path):
    target = tmp_path / "model.onnx"
    seen = []

    def write(path: Path) -> None:
        seen.append(path)
        path.write_bytes(b"model")

    fsutil.atomic_write_file(target, write)
    assert target.read_bytes() == b"model"
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".model.onnx.tmp-")
    assert _leftovers(tmp_path) == []


def test_a_writer_that_writes_elsewhere_is_an_error_not_a_lost_file(tmp_path):
    target = tmp_path / "items.npz"
    with pytest.raises(FileNotFoundError, match="did not create"):
        fsutil.atomic_write_file(target, lambda path: Path(str(path) + ".npz").write_bytes(b"x"))
    assert not target.exists()


def test_a_directory_is_filled_beside_the_target_and_replaces_it_only_when_complete(tmp_path):
    target = tmp_path / "index"
    fsutil.atomic_write_dir(target, lambda d: (d / "a.bin").write_bytes(b"1"))

    def fill(d: Path) -> None:
        (d / "sub").mkdir()
        (d / "sub" / "b.bin").write_bytes(b"2")

    def check(d: Path) -> None:
        assert (d / "sub" / "b.bin").read_bytes() == b"2"
        assert (target / "a.bin").read_bytes() == b"1"  # the old one is still in place while checking

    fsutil.atomic_write_dir(target, fill, check)
    assert sorted(p.name for p in target.iterdir()) == ["sub"]
    assert _leftovers(tmp_path) == []


def test_every_file_and_directory_of_a_written_tree_is_synced(tmp_path, monkeypatch):
    synced = []
    real = fsutil.fsync_path
    monkeypatch.setattr(fsutil, "fsync_path", lambda p: (synced.append(Path(p).name), real(p)))

    def fill(d: Path) -> None:
        (d / "sub").mkdir()
        (d / "sub" / "deep.bin").write_bytes(b"x")
        (d / "top.bin").write_bytes(b"y")

    fsutil.atomic_write_dir(tmp_path / "tree", fill)
    assert {"deep.bin", "top.bin", "sub"} <= set(synced)


def test_a_failed_check_leaves_the_previous_directory_and_no_temporary_one(tmp_path):
    target = tmp_path / "index"
    fsutil.atomic_write_dir(target, lambda d: (d / "a.bin").write_bytes(b"1"))

    def check(d: Path) -> None:
        raise ValueError("unreadable")

    with pytest.raises(ValueError):
        fsutil.atomic_write_dir(target, lambda d: (d / "a.bin").write_bytes(b"2"), check)
    assert (target / "a.bin").read_bytes() == b"1"
    assert _leftovers(tmp_path) == []


def test_a_file_where_the_directory_should_go_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "index"
    target.write_text("not an index")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        fsutil.atomic_write_dir(target, lambda d: (d / "a.bin").write_bytes(b"1"))
    assert target.read_text() == "not an index"
    assert _leftovers(tmp_path) == []


def test_a_symbolic_link_stays_and_the_directory_it_points_to_is_replaced(tmp_path):
    real = tmp_path / "v1"
    fsutil.atomic_write_dir(real, lambda d: (d / "a.bin").write_bytes(b"1"))
    link = tmp_path / "current"
    os.symlink(real, link)
    fsutil.atomic_write_dir(link, lambda d: (d / "a.bin").write_bytes(b"2"))
    assert link.is_symlink() and (real / "a.bin").read_bytes() == b"2"


def test_without_an_exchange_the_directory_is_swapped_by_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "_exchange", lambda a, b: False)  # a kernel or file system without renameat2
    target = tmp_path / "index"
    fsutil.atomic_write_dir(target, lambda d: (d / "a.bin").write_bytes(b"1"))
    fsutil.atomic_write_dir(target, lambda d: (d / "a.bin").write_bytes(b"2"))
    assert (target / "a.bin").read_bytes() == b"2"
    assert _leftovers(tmp_path) == []


def test_the_exchange_swaps_two_directories_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "which").write_text("a")
    (b / "which").write_text("b")
    if not fsutil._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here")
    assert (a / "which").read_text() == "b" and (b / "which").read_text() == "a"


def test_a_killed_builds_temporary_directory_is_removed_by_the_next_write_but_a_live_writers_is_kept(tmp_path):
    import subprocess
    import sys

    from edge_asc.fsutil import atomic_write_dir, remove_stale_siblings

    target = tmp_path / "idx"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".idx.tmp-{dead}-0badcafe"
    live = tmp_path / f".idx.tmp-{os.getppid()}-0feedbee"  # our parent is alive
    for d in (stale, live):
        d.mkdir()
        (d / "index.bin").write_bytes(b"x" * 1000)
        os.utime(d, (1_000_000_000, 1_000_000_000))  # long before this process started
    fresh = tmp_path / f".idx.tmp-{dead}-0fresh00"  # a dead writer's, but changed after this process started
    fresh.mkdir()
    atomic_write_dir(target, lambda tmp: (tmp / "a").write_text("1"))
    assert not stale.exists() and live.exists() and fresh.exists() and (target / "a").read_text() == "1"
    assert remove_stale_siblings(target) == []


def test_another_users_temporary_directory_is_never_removed(tmp_path):
    from edge_asc.fsutil import remove_stale_siblings

    if os.getuid() != 0:
        pytest.skip("needs root to make a directory owned by another user")
    other = tmp_path / ".idx.tmp-999999-00000000"
    other.mkdir()
    os.chown(other, 65534, 65534)
    os.utime(other, (1_000_000_000, 1_000_000_000))
    assert remove_stale_siblings(tmp_path / "idx") == [] and other.exists()
