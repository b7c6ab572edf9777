"""A small blocking client for the daemon's event socket (docs/protocol.md).

    for event in iter_events(events=("scene",)):
        if isinstance(event, Scene):
            print(event.label, event.confidence)

or, to change the decision policy and read on:

    with Client() as client:          # connects and reads the hello
        client.set(k=5)
        for event in client:
            ...

Iteration ends when the daemon closes the connection; reconnecting is the caller's choice.
Event types this version does not know (from a newer daemon) are skipped.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
from pathlib import Path
from typing import Iterable, Iterator

from edge_asc.protocol.messages import ALWAYS_EVENTS, Auth, Event, Hello, Ping, Request, Set, Subscribe, UnknownTypeError
from edge_asc.protocol.records import ProtocolError
from edge_asc.protocol.addresses import Address, ServerError, check_private_dir, default_socket_path, parse_uri, socket_path_candidates, tmp_socket_dir

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024
MAX_EVENT_BYTES = 1 << 20  # a line longer than this is not an event of this protocol


class DaemonNotRunning(ConnectionError):
    """Nothing answers at the daemon's address; the message says where it looked and why."""


def find_socket_path() -> Path:
    """The first of ``socket_path_candidates()`` that exists, else ``default_socket_path()``.

    A socket in the shared /tmp fallback directory is only used when that directory is this user's alone
    (as the daemon requires before listening there): anyone could have made it, to serve false events.
    Raises DaemonNotRunning when that socket is the only one found and its directory is not private.
    """
    refused = None
    for path in socket_path_candidates():
        if not os.path.lexists(path):
            continue
        if path.parent == tmp_socket_dir():
            try:
                check_private_dir(path.parent)
            except ServerError as exc:
                refused = f"not connecting to {path}: {exc}"
                continue
        return path
    if refused is not None:
        raise DaemonNotRunning(refused)
    return default_socket_path()


def connect(uri: str | Path | None = None, timeout: float | None = None) -> socket.socket:
    """A socket connected to the daemon at ``uri`` (default: ``find_socket_path()``)."""
    address = parse_uri(uri) if uri is not None else Address("unix", path=find_socket_path())
    where = address.uri
    try:
        if address.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(address.path))
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((address.host, address.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # requests leave at once
    except FileNotFoundError:
        looked = [str(address.path)] if uri is not None else [str(p) for p in socket_path_candidates()]
        raise DaemonNotRunning(f"no edge-asc daemon: no socket at {' or '.join(looked)} (is `edge-asc run` running?)") from None
    except ConnectionRefusedError:
        stale = " (the socket file is stale)" if address.scheme == "unix" else ""
        raise DaemonNotRunning(f"no edge-asc daemon is listening on {where}{stale}") from None
    except PermissionError:
        raise DaemonNotRunning(f"permission denied connecting to {where}: {_group_hint(address.path)}") from None
    except TimeoutError:
        raise DaemonNotRunning(f"timed out connecting to {where}") from None
    except OSError as exc:
        raise DaemonNotRunning(f"cannot connect to {where}: {exc.strerror or exc}") from None
    sock.settimeout(timeout)
    return sock


def _group_hint(path: Path | None) -> str:
    try:
        group = grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError, TypeError):
        return "the socket is mode 0660; run as its owner or a member of its group"
    return f"the socket is mode 0660; run as its owner or a member of the group {group!r}"


class Client:
    """One connection to the daemon: send requests, read events (``None`` at the end)."""

    def __init__(self, uri: str | Path | None = None, timeout: float | None = None, token: str | None = None) -> None:
        self.uri = uri
        self.timeout = timeout  # seconds to wait for the next event (None: forever)
        self.token = token  # TCP: sent in an ``auth`` request right after the hello (protocol/limits.py)
        self.hello: Hello | None = None
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def connect(self) -> Hello:
        """Connect and read the daemon's hello."""
        self._sock = connect(self.uri, self.timeout)
        event = self.read()
        if not isinstance(event, Hello):
            self.close()
            raise ProtocolError(f"expected a hello from the daemon, got {'nothing' if event is None else event.type}")
        self.hello = event
        if self.token is not None:
            self.send(Auth(self.token))  # answered with pong, or unauthorized (read like any other event)
        return event

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        if self._sock is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- requests ---

    def send(self, request: Request) -> None:
        self._connected().sendall(request.to_line())

    def subscribe(self, events: Iterable[str]) -> None:
        """Receive these of scene/segment/status from now on (hello, error and pong always come)."""
        self.send(Subscribe(tuple(events)))

    def set(self, k: int | None = None, mode: str | None = None, k_max: int | None = None) -> None:
        self.send(Set(k=k, mode=mode, k_max=k_max))

    def ping(self) -> None:
        """The daemon answers with a pong once it has handled every earlier request."""
        self.send(Ping())

    # --- events ---

    def read_line(self) -> bytes | None:
        """The next raw line from the daemon, or None when it closed the connection."""
        sock = self._connected()
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                return line
            if len(self._buf) > MAX_EVENT_BYTES:
                raise ProtocolError(f"the daemon sent more than {MAX_EVENT_BYTES} bytes without a newline")
            chunk = sock.recv(RECV_BYTES)  # TimeoutError after self.timeout
            if not chunk:
                if self._buf:
                    log.warning("the connection closed in the middle of an event (%d bytes)", len(self._buf))
                    self._buf.clear()
                return None
            self._buf += chunk

    def read(self) -> Event | None:
        """The next event, or None when the daemon closed the connection."""
        while (line := self.read_line()) is not None:
            try:
                return Event.from_line(line)
            except UnknownTypeError as exc:
                log.debug("skipping an event this version does not know: %s", exc)
        return None

    def __iter__(self) -> Iterator[Event]:
        while (event := self.read()) is not None:
            yield event

    def _connected(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionError("not connected; call connect() first")
        return self._sock


def iter_events(uri: str | Path | None = None, events: Iterable[str] = ("scene",), timeout: float | None = None) -> Iterator[Event]:
    """Connect, subscribe to ``events`` and yield the hello, then those events and any error.

    Ends when the daemon closes the connection; ``timeout`` (seconds without an event) raises
    ``TimeoutError``; ``DaemonNotRunning`` when nothing listens at ``uri``.
    """
    events = tuple(events)
    wanted = set(events) | set(ALWAYS_EVENTS)
    with Client(uri, timeout) as client:
        client.subscribe(events)
        yield client.hello
        for event in client:
            if event.type in wanted:  # lines sent before the subscription took effect are left out
                yield event
