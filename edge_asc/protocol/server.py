"""The daemon's event server: Unix (and loopback TCP) sockets, one bounded queue per client.

``EventServer`` runs an asyncio loop in its own thread. The pipeline worker calls ``publish(event)``,
which encodes the line and hands it to the loop with ``call_soon_threadsafe``: it never waits for a
client. On the loop, each connection has

* a queue of at most ``queue_size`` encoded lines, filled by ``publish`` for the event types the
  client subscribed to (docs/protocol.md);
* a writer task that moves the queue into the socket and waits for the socket to drain. A client
  that does not read leaves its writer waiting; its queue fills and then, per ``slow_policy``,
  either loses its oldest lines (``drop_oldest``: counted, and reported to the client as an
  ``error`` event with code ``dropped`` and the count, in the place of the lost lines, as soon as it
  reads again) or is disconnected (``disconnect``). Either way no other client and no caller of
  ``publish`` waits for it;
* a reader task that takes request lines of at most ``max_request_bytes`` bytes. A line that is not
  a valid request gets an ``error`` event ``bad_request`` and the connection stays; after
  ``MAX_BAD_REQUESTS`` bad lines in a row, or an endless line, the connection is closed. A client
  that closes its sending side (``echo ... | socat -t 1e9 - UNIX-CONNECT:...``) keeps receiving.

Limits (edge_asc.protocol.limits): at most ``max_clients`` connections (more are told ``busy``); a
request rate per client (excess requests are counted and answered with ``rate_limited``, and the
client's socket is not read until its budget refills); TCP clients are read-only unless they send the
shared token in an ``auth`` request (``tcp_read_only`` / ``tcp_token``); accept() failures are logged
once per burst.

``subscribe`` and ``ping`` are handled here; every other valid request (``set``) goes to the
``on_request`` callback, on the server's thread, and what it returns is sent to that client only.

The module is long (about 500 lines) because EventServer is one state machine on one asyncio loop: its
life cycle, fan-out, queues and request handling share that loop's state. Addresses, listening sockets
and the per-connection record live in their own modules (addresses, sockets, connection).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from edge_asc.protocol.addresses import Address, ServerError, parse_uri
from edge_asc.protocol.connection import QUEUE_SIZE, SLOW_POLICIES, ClientStats, Connection, ServerStats
from edge_asc.protocol.messages import (
    ALWAYS_EVENTS,
    BAD_REQUEST,
    DROPPED,
    INTERNAL,
    REQUEST_PREVIEW_CHARS,
    Error,
    Event,
    Hello,
    Ping,
    Pong,
    ProtocolError,
    Request,
    Subscribe,
    preview,
)
from edge_asc.protocol.limits import MAX_CLIENTS, REQUEST_RATE, Gatekeeper
from edge_asc.protocol.sockets import listen_tcp, listen_unix

log = logging.getLogger(__name__)


MAX_REQUEST_BYTES = 4096  # one request line; requests are a few dozen bytes
MAX_BAD_REQUESTS = 8  # bad request lines in a row before the connection is closed
ENDLESS_LINE_BYTES = 1 << 20  # a "line" this long without a newline closes the connection
WRITE_BUFFER_HIGH = 64 * 1024  # bytes the loop buffers for a socket before waiting for it to drain
READ_CHUNK = 64 * 1024
REQUEST_PREVIEW_BYTES = 4 * REQUEST_PREVIEW_CHARS  # enough UTF-8 bytes for an error's quote
CLOSE_GRACE_S = 1.0  # on stop, time for clients to take their last lines before they are cut off


class EventServer:
    """Serves events to subscribers on Unix and loopback TCP sockets (see the module docstring).

    ``hello()`` is called on connect (on the server's thread) for the client's first event;
    ``on_request(request)`` gets every valid request other than subscribe/ping (on the server's
    thread; it must be quick) and returns an event for that client or None. If it raises
    ``ProtocolError`` the client gets ``bad_request`` with the message; any other exception is
    logged and the client gets ``internal``.
    """

    def __init__(
        self,
        uris: list[str],
        hello: Callable[[], Hello],
        on_request: Callable[[Request], Event | None],
        queue_size: int = QUEUE_SIZE,
        slow_policy: str = SLOW_POLICIES[0],
        *,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        allow_remote: bool = False,
        max_clients: int = MAX_CLIENTS,
        request_rate: float = REQUEST_RATE,
        tcp_read_only: bool = False,
        tcp_token: str | None = None,
    ) -> None:
        if not uris:
            raise ServerError("no address to listen on")
        if slow_policy not in SLOW_POLICIES:
            raise ServerError(f"slow_policy {slow_policy!r} is not accepted; accepted values: {', '.join(SLOW_POLICIES)}")
        if queue_size < 1:
            raise ServerError(f"queue_size must be at least 1, got {queue_size}")
        self._addresses = [parse_uri(u) for u in uris]
        for address in self._addresses:
            if not address.is_loopback and not allow_remote:
                raise ServerError(
                    f"{address.uri}: refusing a non-loopback address (the protocol has no authentication); "
                    "use 127.0.0.1 or ::1, and a tunnel (ssh -L) for clients on other machines"
                )
        self._hello = hello
        self._on_request = on_request
        self._queue_size = queue_size
        self._slow_policy = slow_policy
        self._max_request_bytes = max_request_bytes
        self._gate = Gatekeeper(max_clients, request_rate, tcp_read_only, tcp_token)  # clients, rates, TCP access
        self._run_lock = threading.Lock()  # guards _running against publish() racing stop()
        self._running = False
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._unix_files: list[tuple[Path, int]] = []  # (path, inode) to remove on stop
        self._bound: list[Address] = []
        self._conns_lock = threading.Lock()  # guards _conns for readers on other threads (stats)
        self._conns: dict[int, Connection] = {}
        self._next_id = 1
        self._subscribed = collections.Counter()  # event type -> connected clients that get it
        self._published = 0
        self._drops = 0
        self._disconnects = 0

    # --- life cycle (caller's thread) ---

    def start(self, timeout: float = 10.0) -> None:
        """Listen on every address and serve from a background thread; returns once listening."""
        if self._running or self._stopped:
            raise ServerError("an EventServer starts once")
        socks = []
        try:
            for address in self._addresses:
                if address.scheme == "unix":
                    sock, inode = listen_unix(address.path)
                    self._unix_files.append((address.path, inode))
                    self._bound.append(address)
                else:
                    sock = listen_tcp(address)
                    host, port = sock.getsockname()[:2]
                    self._bound.append(Address("tcp", host=host, port=port))
                socks.append(sock)
        except ServerError:
            for sock in socks:
                sock.close()
            self._remove_socket_files()
            raise
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(socks, ready, failure), name="edge-asc-events", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise ServerError(f"the event server did not start within {timeout} s")
        if failure:
            self._thread.join()
            self._remove_socket_files()
            raise ServerError(f"the event server could not start: {failure[0]}") from failure[0]
        with self._run_lock:
            self._running = True
        log.info("serving events on %s", ", ".join(a.uri for a in self._bound))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, let clients take their queued lines (briefly), close all, remove socket files."""
        if threading.current_thread() is self._thread:
            raise ServerError("stop() cannot be called from the server's own thread (hello or on_request)")
        with self._run_lock:
            was_running, self._running = self._running, False
            self._stopped = True
        if not was_running:
            return
        loop = self._loop
        shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            shutdown.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            self._remove_socket_files()
        log.info("event server stopped")

    def __enter__(self) -> EventServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def uris(self) -> list[str]:
        """The addresses listened on, with the real port of ``tcp://...:0``."""
        return [a.uri for a in self._bound]

    # --- the pipeline's side (any thread) ---

    def publish(self, event: Event) -> None:
        """Queue ``event`` for every client subscribed to its type. Never blocks; no-op when not running."""
        if not isinstance(event, Event):
            raise TypeError(f"publish() takes an event, got {type(event).__name__}")
        line = event.to_line()
        with self._run_lock:  # held only for the flag check; stop() holds it as briefly
            if self._running:
                self._loop.call_soon_threadsafe(self._fan_out, event.type, line)

    def has_subscribers(self, event_type: str) -> bool:
        """Whether any connected client gets ``event_type`` (lets the pipeline skip building events)."""
        return self._subscribed[event_type] > 0

    def stats(self) -> ServerStats:
        """Counters and a per-client view; safe from any thread."""
        now = time.monotonic()
        with self._conns_lock:
            conns = list(self._conns.values())
        clients = tuple(
            ClientStats(
                id=c.id,
                peer=c.peer,
                events=tuple(sorted(c.events - set(ALWAYS_EVENTS))),
                queued=len(c.queue),
                sent=c.sent,
                dropped=c.dropped,
                connected_s=now - c.connected_at,
            )
            for c in conns
        )
        return ServerStats(len(clients), self._drops, self._disconnects, self._published, clients, self._gate.rate_limited)

    # --- the loop's side ---

    def _run(self, socks: list[socket.socket], ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._gate.loop_exception)
        try:
            loop.run_until_complete(self._open(socks))
        except Exception as exc:  # reported to start()'s caller
            failure.append(exc)
            for sock in socks:
                sock.close()
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _open(self, socks: list[socket.socket]) -> None:
        for sock in socks:
            if sock.family == socket.AF_UNIX:
                server = await asyncio.start_unix_server(self._serve_client, sock=sock)
            else:
                server = await asyncio.start_server(self._serve_client, sock=sock)
            self._servers.append(server)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        with self._conns_lock:
            conns = list(self._conns.values())
        for conn in conns:
            conn.close_soon()
        deadline = time.monotonic() + CLOSE_GRACE_S
        while self._conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self._conns.values()):
            log.info("%s did not take its last events; cutting it off", conn.name)
            conn.abort()
        while self._conns:
            await asyncio.sleep(0.001)
        for server in self._servers:
            await server.wait_closed()

    def _remove_socket_files(self) -> None:
        for path, inode in self._unix_files:
            try:
                if os.stat(path).st_ino == inode:  # not a newer daemon's socket
                    path.unlink()
            except FileNotFoundError:
                pass  # already gone: nothing to remove
            except OSError as exc:
                log.warning("cannot remove socket %s: %s", path, exc.strerror or exc)
        self._unix_files.clear()

    def _fan_out(self, event_type: str, line: bytes) -> None:
        self._published += 1
        for conn in list(self._conns.values()):
            if event_type in conn.events:
                self._enqueue(conn, line)

    def _enqueue(self, conn: Connection, line: bytes) -> None:
        if conn.aborted or conn.close_when_flushed:
            return
        if len(conn.queue) >= self._queue_size:
            if self._slow_policy == "disconnect":
                lost = len(conn.queue) + 1
                conn.dropped += lost
                self._drops += lost
                self._disconnects += 1
                log.warning("%s disconnected: %d events waited for it to read", conn.name, lost - 1)
                conn.abort()
                return
            conn.queue.popleft()
            conn.pending_drops += 1
            conn.dropped += 1
            self._drops += 1
            if conn.pending_drops == 1:
                log.info("%s reads too slowly; dropping its oldest events", conn.name)
        conn.queue.append(line)
        conn.wake.set()

    def _set_events(self, conn: Connection, events: frozenset[str]) -> None:
        self._subscribed.subtract(conn.events)
        conn.events = events
        self._subscribed.update(conn.events)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except Exception:
            log.exception("unexpected error serving a client; closing its connection")
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        busy = self._gate.refusal(peer, [c.peer for c in self._conns.values()])
        if busy is not None:
            writer.write(busy.to_line())
            writer.close()  # after the line is written
            return
        conn = Connection(self._next_id, peer, writer)
        self._gate.admit(conn)
        self._next_id += 1
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        sock = writer.get_extra_info("socket")
        if sock.family in (socket.AF_INET, socket.AF_INET6):  # asyncio skips this for sockets made with proto 0
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle: an event leaves at once
        try:
            hello = self._hello()
        except Exception:
            log.exception("%s: building the hello failed; closing the connection", conn.name)
            writer.transport.abort()
            return
        conn.queue.append(hello.to_line())
        with self._conns_lock:
            self._conns[conn.id] = conn
        self._subscribed.update(conn.events)
        log.debug("%s connected", conn.name)
        reading = asyncio.create_task(self._read_requests(conn, reader))
        reading.add_done_callback(lambda task: self._reader_done(conn, task))
        try:
            await self._write_events(conn)
        finally:
            reading.cancel()
            with self._conns_lock:
                del self._conns[conn.id]
            self._subscribed.subtract(conn.events)
            if not writer.transport.is_closing():
                writer.transport.abort()
            log.debug("%s gone (sent %d, dropped %d)", conn.name, conn.sent, conn.dropped)

    def _reader_done(self, conn: Connection, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: unexpected error handling its requests; closing", conn.name, exc_info=task.exception())
            conn.abort()

    async def _write_events(self, conn: Connection) -> None:
        """Move the queue into the socket until the client goes or the connection is closed."""
        writer = conn.writer
        try:
            while not conn.aborted:
                if not conn.queue:
                    if conn.close_when_flushed:
                        break
                    conn.wake.clear()
                    await conn.wake.wait()
                    continue
                lines = []
                if conn.pending_drops:  # report the gap where it is: before the oldest line kept
                    message = f"{conn.pending_drops} events were dropped because this client read too slowly"
                    lines.append(Error(DROPPED, message, count=conn.pending_drops).to_line())
                    conn.pending_drops = 0
                lines.extend(conn.queue)
                conn.sent += len(conn.queue)
                conn.queue.clear()
                writer.write(b"".join(lines))
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("%s: connection lost: %s", conn.name, exc)  # a client leaving is normal
            return
        if conn.aborted:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE_S)
        except (TimeoutError, ConnectionError, OSError):
            writer.transport.abort()

    async def _read_requests(self, conn: Connection, reader: asyncio.StreamReader) -> None:
        """Split the client's bytes into request lines of bounded length and handle each."""
        buf = bytearray()
        skipping = 0  # bytes of an over-long line thrown away so far
        limit = self._max_request_bytes
        while not conn.close_when_flushed:
            try:
                chunk = await reader.read(READ_CHUNK)
            except (ConnectionError, OSError) as exc:
                log.debug("%s: read failed: %s", conn.name, exc)
                conn.abort()
                return
            if not chunk:  # EOF: the client stopped sending; it keeps receiving until it closes
                if buf and not skipping:
                    self._handle_line(conn, bytes(buf))
                return
            if conn.budget.refused:
                await self._gate.throttle(conn, self._enqueue)
            buf += chunk
            while not conn.close_when_flushed:
                if not skipping:
                    self._gate.count_flood(conn.budget, buf)  # a flood's lines are counted, not split one by one
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > limit:
                        if not skipping:
                            self._bad_request(conn, f"request line longer than {limit} bytes", bytes(buf[:REQUEST_PREVIEW_BYTES]))
                        skipping += len(buf)
                        buf.clear()
                        if skipping > ENDLESS_LINE_BYTES and not conn.close_when_flushed:
                            self._refuse(conn, f"request line longer than {ENDLESS_LINE_BYTES} bytes; closing the connection")
                    break
                line = bytes(buf[:end])
                del buf[: end + 1]
                if skipping:  # the end of an over-long line, already reported
                    skipping = 0
                elif line.strip() and not self._gate.take(conn.budget):  # over its rate: counted, not parsed
                    pass
                elif len(line) > limit:
                    self._bad_request(conn, f"request line longer than {limit} bytes", line[:REQUEST_PREVIEW_BYTES])
                else:
                    self._handle_line(conn, line)

    def _handle_line(self, conn: Connection, line: bytes) -> None:
        if not line.strip():
            return  # an empty line (someone pressing Enter in socat)
        try:
            request = Request.from_line(line)
        except ProtocolError as exc:
            self._bad_request(conn, str(exc), line)
            return
        if self._gate.needs_authority(conn, request):
            reply, refused = self._gate.authorize(conn, request, line)
            self._enqueue(conn, reply.to_line())
            conn.bad_requests += refused  # guessing the token closes the connection like bad requests do
            if conn.bad_requests >= MAX_BAD_REQUESTS:
                self._refuse(conn, f"{conn.bad_requests} refused requests in a row; closing the connection")
            return
        conn.bad_requests = 0
        if isinstance(request, Subscribe):
            self._set_events(conn, frozenset(request.events + ALWAYS_EVENTS))
            log.debug("%s subscribed to %s", conn.name, ", ".join(request.events) or "nothing")
            return
        if isinstance(request, Ping):
            self._enqueue(conn, Pong().to_line())
            return
        try:
            reply = self._on_request(request)
        except ProtocolError as exc:
            self._bad_request(conn, str(exc), line)
            return
        except Exception as exc:
            log.exception("%s: handling %s failed", conn.name, preview(line))
            reply = Error(INTERNAL, f"the daemon could not handle this request: {exc}", request=preview(line))
        if reply is None:
            return
        if not isinstance(reply, Event):
            log.error("on_request returned %r for %s; expected an event or None", reply, preview(line))
            reply = Error(INTERNAL, "the daemon could not handle this request", request=preview(line))
        self._enqueue(conn, reply.to_line())

    def _bad_request(self, conn: Connection, message: str, line: bytes) -> None:
        conn.bad_requests += 1
        log.debug("%s: bad request: %s", conn.name, message)
        self._enqueue(conn, Error(BAD_REQUEST, message, request=preview(line)).to_line())
        if conn.bad_requests >= MAX_BAD_REQUESTS:
            self._refuse(conn, f"{conn.bad_requests} bad requests in a row; closing the connection")

    def _refuse(self, conn: Connection, message: str) -> None:
        log.warning("%s: %s", conn.name, message)
        self._enqueue(conn, Error(BAD_REQUEST, message).to_line())
        conn.close_soon()
