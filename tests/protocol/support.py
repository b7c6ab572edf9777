"""Shared helpers of the protocol, server and listen tests: sample events, a recording server, a connected client."""

from __future__ import annotations

import json
import selectors
import time

from edge_asc.protocol.client import Client
from edge_asc.protocol.messages import (
    Auth,
    Error,
    Event,
    Hello,
    Neighbour,
    Ping,
    Pong,
    Scene,
    Segment,
    Set,
    Status,
    Subscribe,
)
from edge_asc.protocol.server import EventServer


LABELS = ("beach", "bus", "cafe/restaurant", "city_center", "forest_path")
TIMEOUT = 5.0


def make_hello(k: int = 5, mode: str = "window") -> Hello:
    return Hello(1, LABELS, k, mode, 0.3, 16000, "ab" * 32, "0.1.0")


def make_segment(index: int, n_neighbours: int = 3) -> Segment:
    neighbours = [Neighbour(LABELS[j % len(LABELS)], 0.25 + j) for j in range(n_neighbours)]
    return Segment(index, "beach", 0.25, neighbours, 0.3 * index, 0.3 * index + 0.3, {"features": 0.21, "encoder": 0.42, "search": 0.05, "total": 0.7})


def make_scene(index: int = 4) -> Scene:
    return Scene("bus", 0.6, {"bus": 3, "beach": 2}, 5, "window", 0.0, 1.5, 1.7e9, 0.83, index)


def make_status() -> Status:
    timings = {s: {"median": 0.2, "p99": 0.9} for s in ("features", "encoder", "search", "total")}
    return Status(12.5, 41, 0, timings, 2, 0, "file:street.flac", 5, "window")


ALL_EVENTS = [
    make_hello(),
    make_scene(),
    make_segment(7),
    make_status(),
    Status(0.1, 0, 0, {"total": {"median": None, "p99": None}}, 0, 0, "mic:pulse", 1, "sliding"),
    Error("source_lost", "the input device went away; retrying"),
    Error("bad_request", "not JSON", request="garbage"),
    Error("dropped", "3 events were dropped", count=3),
    Pong(),
]
ALL_REQUESTS = [Subscribe(("scene", "segment", "status")), Subscribe(()), Set(k=5), Set(mode="sliding"), Set(k=3, mode="window"), Ping(), Auth("0123456789abcdef")]


class Server:
    """An EventServer with a recording request handler."""

    def __init__(self, uris, **kwargs):
        self.requests = []
        self.reply = lambda request: None
        self.server = EventServer(uris, make_hello, self._on_request, **kwargs)

    def _on_request(self, request):
        self.requests.append(request)
        return self.reply(request)

    def __enter__(self):
        self.server.start()
        return self.server

    def __exit__(self, *exc_info):
        self.server.stop()


def connected(uri, events=None) -> Client:
    """A client that has read the hello and whose subscription (if any) is in effect."""
    client = Client(uri, timeout=TIMEOUT)
    client.connect()
    if events is not None:
        client.subscribe(events)
    client.ping()
    assert isinstance(client.read(), Pong)
    return client


def read_until_closed(client: Client) -> list[Event]:
    """Events until the server closes the connection (a close with unread input may arrive as a reset)."""
    events = []
    try:
        for event in client:
            events.append(event)
    except ConnectionResetError:
        pass  # the same end of the connection, reported as a reset
    return events


def wait_for(condition, timeout=TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def read_lines_until(stream, predicate, timeout=TIMEOUT):
    """Lines from a pipe until one satisfies ``predicate``; fails on timeout instead of hanging."""
    lines = []
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not selector.select(max(deadline - time.monotonic(), 0)):
                raise AssertionError(f"timed out; lines so far: {lines}")
            line = stream.readline()
            if not line:
                return lines
            lines.append(json.loads(line))
            if predicate(lines[-1]):
                return lines
    finally:
        selector.close()
