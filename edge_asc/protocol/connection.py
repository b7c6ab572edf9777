"""One client connection of the event server (it lives on the server's loop) and the statistics the
server reports about its clients."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass

from edge_asc.protocol.limits import RequestBudget
from edge_asc.protocol.messages import ALWAYS_EVENTS, DEFAULT_EVENTS

SLOW_POLICIES = ("drop_oldest", "disconnect")  # what happens to a client whose queue is full; the first is the default
QUEUE_SIZE = 256  # lines waiting per client before the slow policy applies


@dataclass(frozen=True)
class ClientStats:
    id: int
    peer: str
    events: tuple[str, ...]  # streamed event types it subscribed to
    queued: int  # lines waiting in its queue
    sent: int  # lines handed to its socket
    dropped: int  # lines it lost by reading too slowly
    connected_s: float


@dataclass(frozen=True)
class ServerStats:
    subscribers: int  # connected clients
    drops: int  # lines lost by slow clients since start (all clients, gone ones included)
    disconnects: int  # clients disconnected for being too slow (slow_policy "disconnect")
    published: int  # events published since start
    clients: tuple[ClientStats, ...]
    rate_limited: int = 0  # requests refused for going over a client's rate since start (protocol/limits.py)


class Connection:
    def __init__(self, cid: int, peer: str, writer: asyncio.StreamWriter) -> None:
        self.id = cid
        self.peer = peer
        self.writer = writer
        self.events = frozenset(DEFAULT_EVENTS + ALWAYS_EVENTS)
        self.queue: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.pending_drops = 0  # dropped since the last report to the client
        self.dropped = 0
        self.sent = 0
        self.bad_requests = 0  # in a row
        self.close_when_flushed = False
        self.aborted = False
        self.connected_at = time.monotonic()
        self.budget = RequestBudget()  # requests it may still send now (the server sets its rate)
        self.trusted = True  # may change settings (a TCP client without the token may not)

    @property
    def name(self) -> str:
        return f"client {self.id} ({self.peer})"

    def abort(self) -> None:
        """Cut the connection now, dropping whatever it had not taken."""
        self.aborted = True
        self.queue.clear()
        self.writer.transport.abort()
        self.wake.set()

    def close_soon(self) -> None:
        """Send what is queued, then close."""
        self.close_when_flushed = True
        self.wake.set()
