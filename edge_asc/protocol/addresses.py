"""Where the daemon serves events: addresses (unix:// and tcp:// URIs), the default socket path and the
private directory checks that both the server and the client apply.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SOCKET_NAME = "edge-asc.sock"
PRIVATE_DIR_MODE = 0o700  # the /tmp fallback directory: this user only
SYSTEM_SOCKET_DIR = Path("/run/edge-asc")  # systemd's RuntimeDirectory=edge-asc
TMP_ROOT = Path("/tmp")  # holds the last-resort socket directory edge-asc-$UID


class ServerError(RuntimeError):
    """The server cannot listen (bad address, socket in use, permissions); the message says where."""


@dataclass(frozen=True)
class Address:
    """A parsed ``unix:///path`` or ``tcp://host:port``."""

    scheme: str  # "unix" or "tcp"
    path: Path | None = None
    host: str = ""
    port: int = 0

    @property
    def uri(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.scheme == "unix" or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name other than localhost: not known to be local


def parse_uri(uri: str | Path) -> Address:
    """``unix:///run/edge-asc/edge-asc.sock``, ``tcp://127.0.0.1:7373``; a bare path means unix."""
    text = str(uri)
    if "://" not in text:
        return Address("unix", path=Path(text))
    parts = urllib.parse.urlsplit(text)
    if parts.scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise ServerError(f"{text}: a unix URI needs an absolute path, e.g. unix:///run/edge-asc/{SOCKET_NAME}")
        return Address("unix", path=Path(parts.path))
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError as exc:
            raise ServerError(f"{text}: {exc}") from None
        if not parts.hostname or port is None or parts.path not in ("", "/"):
            raise ServerError(f"{text}: a tcp URI is tcp://HOST:PORT, e.g. tcp://127.0.0.1:7373")
        return Address("tcp", host=parts.hostname, port=port)
    raise ServerError(f"{text}: unsupported address scheme {parts.scheme!r}; use unix:///PATH or tcp://HOST:PORT")


def socket_path_candidates() -> list[Path]:
    """Where a daemon's socket may be, most specific first (a client tries each that exists)."""
    candidates = []
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        candidates.append(Path(runtime_dir) / "edge-asc" / SOCKET_NAME)
    candidates.append(SYSTEM_SOCKET_DIR / SOCKET_NAME)
    candidates.append(tmp_socket_dir() / SOCKET_NAME)
    return candidates


def tmp_socket_dir() -> Path:
    """The last-resort socket directory, /tmp/edge-asc-$UID (checked before use: see make_private_dir)."""
    return TMP_ROOT / f"edge-asc-{os.getuid()}"


def default_socket_path() -> Path:
    """The daemon's socket: $XDG_RUNTIME_DIR/edge-asc/, else /run/edge-asc/ if it exists, else /tmp/edge-asc-$UID/."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return Path(runtime_dir) / "edge-asc" / SOCKET_NAME
    if SYSTEM_SOCKET_DIR.is_dir():
        return SYSTEM_SOCKET_DIR / SOCKET_NAME
    return tmp_socket_dir() / SOCKET_NAME


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` with mode 0700, or check that the one there is ours alone.

    In a shared /tmp anyone may have made the directory first (or a symbolic link by that name), to
    read the events or to serve false ones: refuse it unless it is a real directory owned by this user
    that no group or other user may write to.
    """
    try:
        os.mkdir(directory, PRIVATE_DIR_MODE)
        log.info("created socket directory %s", directory)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise ServerError(f"cannot create the socket directory {directory}: {exc.strerror or exc}") from exc
    check_private_dir(directory)


def check_private_dir(directory: Path) -> None:
    """Raise ServerError unless ``directory`` is a real directory of this user that only it may write to
    (the daemon before listening there, the client before trusting a socket found there)."""
    try:
        st = os.lstat(directory)
    except OSError as exc:
        raise ServerError(f"cannot check the socket directory {directory}: {exc.strerror or exc}") from exc
    refuse = f"refusing to put the socket in {directory}: it"
    if not stat.S_ISDIR(st.st_mode):
        raise ServerError(f"{refuse} is not a directory (a symbolic link or another file)")
    if st.st_uid != os.getuid():
        raise ServerError(f"{refuse} belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ServerError(f"{refuse} may be written by group or others (mode {stat.S_IMODE(st.st_mode):04o}; chmod go-w it)")
