"""Atomic file and directory writes: the one implementation every writer in edge-asc uses.

A reader (the daemon loading an index, a resumed training run, an evaluation reading its cache) sees
either the previous complete file or the new complete file, never a half-written one, even when the
writer is killed or the machine loses power: the content goes to a hidden temporary sibling, is
fsync'd, renamed over the target, and the parent directory is fsync'd so the rename itself is durable.
A writer that fails removes its temporary file or directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
TMP_KIND = "tmp"  # hidden temporary siblings are named .<name>.tmp-<pid>-<random>
_SIBLING_PID = re.compile(r"-(\d+)-[0-9a-f]+$")  # the writer's pid in a sibling's name


def fsync_path(path: str | Path) -> None:
    """fsync a file or a directory by path (directories that cannot be synced are passed over)."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else 0))
    except OSError:
        if Path(path).is_dir():  # systems that cannot open a directory: nothing to sync
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # file systems without fsync on directories
            raise
    finally:
        os.close(fd)


def sibling(target: str | Path, kind: str = TMP_KIND) -> Path:
    """An unused hidden name beside ``target``: ``.<name>.<kind>-<pid>-<random>``."""
    target = Path(target)
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: it replaces ``path`` only when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling(path)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with the UTF-8 ``text`` atomically and durably."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_file(path: str | Path, write: Callable[[Path], None]) -> None:
    """For writers that need a file name (onnx.save, a library's save): ``write(tmp_path)`` fills a
    temporary sibling, which then replaces ``path`` atomically and durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling(path)
    try:
        write(tmp)
        if not tmp.is_file():  # a writer that appends its own suffix (np.savez) wrote elsewhere
            raise FileNotFoundError(f"the writer did not create {tmp}; give it a file object or a name it keeps")
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


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


def _replace_dir(new: Path, target: Path) -> None:
    """Put the complete directory ``new`` at ``target``; an existing ``target`` is removed only afterwards."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):  # one step: a reader never finds the target missing
        shutil.rmtree(new)  # now holds the previous directory
        return
    old = sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)  # put the previous directory back
        raise
    shutil.rmtree(old)


def process_start_time() -> float:
    """When this process started (Unix time), from /proc; this module's import time where /proc is absent."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # starttime, in clock ticks after boot
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_stale_siblings(target: str | Path, kind: str = TMP_KIND) -> list[Path]:
    """Remove the temporary siblings of ``target`` that killed writers left (``atomic_write_dir`` /
    ``atomic_open`` interrupted by SIGKILL or a power cut): only directories and files owned by this user,
    last changed before this process started, whose writer (the pid in the name) is gone. A writer still
    running, or another user's file, is never touched. Returns what was removed; failures are logged."""
    target = Path(target)
    started = process_start_time()
    removed = []
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}.{kind}-*"))
    except OSError:
        return removed
    for path in candidates:
        match = _SIBLING_PID.search(path.name)
        try:
            st = os.lstat(path)
            if match is None or st.st_uid != os.getuid() or st.st_mtime >= started or _pid_alive(int(match.group(1))):
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            log.warning("cannot remove %s, left by an interrupted write: %s", path, exc.strerror or exc)
            continue
        log.info("removed %s, left by an interrupted write", path)
        removed.append(path)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters made literal."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def atomic_write_dir(target: str | Path, fill: Callable[[Path], None], check: Callable[[Path], object] | None = None) -> Path:
    """Write a directory atomically: ``fill(tmp)`` writes every file into a fresh temporary sibling, each
    file and the directory are fsync'd, ``check(tmp)`` may read it all back, and only then does it
    replace ``target`` (in one step where Linux allows). A symbolic link at ``target`` stays and what it
    points to is replaced. Returns the path written."""
    target = Path(target)
    if target.is_symlink():
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target}: exists and is not a directory; not replacing it with one")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(target)  # what killed builds left beside it
    tmp = sibling(target)
    os.mkdir(tmp)  # mode 0o777 less the umask, as the directory it will become
    try:
        fill(tmp)
        for root, dirs, files in os.walk(tmp, topdown=False):  # every file, then every directory, bottom up
            for name in files:
                fsync_path(Path(root) / name)
            fsync_path(root)
        if check is not None:
            check(tmp)
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(target.parent)
    return target
