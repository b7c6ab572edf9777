"""Listening sockets for the event server: a Unix socket file (mode 0660, never stealing a live daemon's
socket) and a loopback TCP socket."""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path

from edge_asc.protocol.addresses import Address, ServerError, make_private_dir, tmp_socket_dir

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660  # owner and group may connect
DIR_MODE = 0o750  # a socket directory this server creates: group members may reach the socket
LIVE_CHECK_TIMEOUT_S = 1.0  # connecting to an existing socket file to see if a daemon answers
BACKLOG = 64


def socket_answers(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket file ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(LIVE_CHECK_TIMEOUT_S)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except TimeoutError:
        return True  # a listener too busy to accept is still a listener
    except OSError as exc:
        raise ServerError(f"cannot check whether a daemon listens on {path}: {exc.strerror or exc}") from exc
    finally:
        probe.close()
    return True


def make_dirs(directory: Path, mode: int) -> None:
    """Create ``directory`` and its missing parents, each with exactly ``mode`` whatever the umask
    (mkdir's mode is masked by it: under umask 000 a 0750 request would still give 0750, but parents
    made by mkdir -p would get 0777). Existing directories are left as they are."""
    missing = []
    for d in (directory, *directory.parents):
        if d.is_dir():
            break
        missing.append(d)
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, left alone
        os.chmod(d, mode)
        log.info("created socket directory %s (mode %04o)", d, mode)


def listen_unix(path: Path) -> tuple[socket.socket, int]:
    """A listening Unix socket at ``path`` (mode 0660) and the inode of its file."""
    if path.parent == tmp_socket_dir():
        make_private_dir(path.parent)
    try:
        make_dirs(path.parent, DIR_MODE)
    except OSError as exc:
        raise ServerError(f"cannot create the socket directory {path.parent}: {exc.strerror or exc}") from exc
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ServerError(f"{path} exists and is not a socket; refusing to replace it")
        if socket_answers(path):
            raise ServerError(f"another daemon is already listening on {path}")
        log.warning("replacing stale socket %s (nothing answers on it)", path)
        try:
            path.unlink()
        except OSError as exc:
            raise ServerError(f"cannot remove the stale socket {path}: {exc.strerror or exc}") from exc
    # bound and listening under a hidden name first, then renamed into place: a client that finds the
    # socket file always finds a listener (never "connection refused" in between)
    staged = path.with_name(f".{path.name}.new")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            staged.unlink(missing_ok=True)
            sock.bind(str(staged))
        except OSError:  # a path too long for AF_UNIX with the extra characters: bind the path itself
            staged = path
            sock.bind(str(path))
        os.chmod(staged, SOCKET_MODE)  # before listen(): nobody can connect in between
        sock.listen(BACKLOG)
        sock.setblocking(False)
        if staged != path:
            os.rename(staged, path)
        inode = os.stat(path).st_ino
    except OSError as exc:
        sock.close()
        if staged != path:
            staged.unlink(missing_ok=True)
        raise ServerError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    return sock, inode


def listen_tcp(address: Address) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {address.uri}: {exc.strerror or exc}") from exc
    return sock
