"""Does a subscriber that never reads delay the others? Event latency with 50 subscribers.

Two runs of the real EventServer on a Unix socket, each publishing ``--events`` segment events at
``--rate`` per second from the main thread (as the pipeline worker does):

* ``readers``: ``--clients - 1`` subscribers that read everything;
* ``readers+stuck``: the same plus one subscriber with a tiny receive buffer that never reads.

The readers run in a separate process (one selector loop over all their sockets) so that they do
not compete with the server for the interpreter lock. Latency is measured per event and reader,
from just before ``publish()`` to the reader's ``recv()`` returning the line, on CLOCK_MONOTONIC
(``time.perf_counter_ns``, shared by both processes). Also reported: the time ``publish()`` takes
in the caller, the stuck subscriber's drops, and latency in the first and last tenth of the run
(growth would show there once the stuck subscriber's buffers are full).

    python bench/bench_subscribers.py [--clients 50] [--events 2000] [--rate 200] [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import selectors
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_asc.protocol.messages import Hello, Neighbour, Ping, Segment, Subscribe
from edge_asc.protocol.server import EventServer

LABELS = tuple(f"scene_{i:02d}" for i in range(13))
INDEX_RE = re.compile(rb'"type":"segment","v":1,"index":(\d+)')
CONNECT_TIMEOUT_S = 10.0


@dataclass
class RunResult:
    name: str
    readers: int
    stuck: int
    events: int
    received: int  # (event, reader) pairs that arrived
    expected: int
    latency_ms_median: float
    latency_ms_p99: float
    latency_ms_max: float
    first_tenth_p99_ms: float
    last_tenth_p99_ms: float
    publish_us_median: float
    publish_us_p99: float
    publish_us_max: float
    stuck_dropped: int
    server_drops: int


def hello() -> Hello:
    return Hello(1, LABELS, 5, "window", 0.3, 16000, "0" * 64, "bench")


def make_event(index: int, n_neighbours: int) -> Segment:
    neighbours = [Neighbour(LABELS[(index + j) % len(LABELS)], 0.5 + 0.01 * j) for j in range(n_neighbours)]
    return Segment(index, LABELS[index % len(LABELS)], 0.5, neighbours, 0.3 * index, 0.3 * index + 0.3, {"features": 0.2, "encoder": 0.4, "search": 0.05, "total": 0.7})


def subscribed_socket(path: str, rcvbuf: int | None = None) -> socket.socket:
    """A Unix socket connected to the server, subscribed to segments, past the pong."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(CONNECT_TIMEOUT_S)
    sock.connect(path)
    sock.sendall(Subscribe(("segment",)).to_line() + Ping().to_line())
    buf = b""
    while b'"type":"pong"' not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection before the pong")
        buf += chunk
    return sock


def reader_process(path: str, n_readers: int, n_events: int, timeout_s: float, pipe) -> None:
    """Connect ``n_readers`` subscribers, then read until each has every event (or the timeout)."""
    socks = [subscribed_socket(path) for _ in range(n_readers)]
    selector = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)
    tails = [b""] * n_readers
    got = [0] * n_readers
    records: list[list[tuple[int, int]]] = [[] for _ in range(n_readers)]  # (index, recv ns)
    pipe.send("ready")
    deadline = time.monotonic() + timeout_s
    while min(got) < n_events and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            i = key.data
            chunk = key.fileobj.recv(1 << 16)
            now = time.perf_counter_ns()
            if not chunk:
                selector.unregister(key.fileobj)
                continue
            data = tails[i] + chunk
            cut = data.rfind(b"\n") + 1
            tails[i] = data[cut:]
            for match in INDEX_RE.finditer(data, 0, cut):
                records[i].append((int(match.group(1)), now))
                got[i] += 1
    pipe.send([np.array(r, dtype=np.int64).reshape(-1, 2) for r in records])
    for sock in socks:
        sock.close()


def run_once(name: str, n_clients: int, stuck: bool, n_events: int, rate: float, queue_size: int, n_neighbours: int) -> RunResult:
    n_readers = n_clients - 1
    workdir = Path(tempfile.mkdtemp(prefix="ea-bench-"))
    path = str(workdir / "edge-asc.sock")
    events = [make_event(i, n_neighbours) for i in range(n_events)]
    publish_ns = np.zeros(n_events, dtype=np.int64)
    publish_cost_ns = np.zeros(n_events, dtype=np.int64)
    server = EventServer([f"unix://{path}"], hello, lambda request: None, queue_size=queue_size)
    server.start()
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    timeout_s = n_events / rate + 30.0
    reader = ctx.Process(target=reader_process, args=(path, n_readers, n_events, timeout_s, child_end), daemon=True)
    reader.start()
    stuck_sock = None
    try:
        if not parent_end.poll(60):
            raise RuntimeError("the reader process did not connect")
        assert parent_end.recv() == "ready"
        if stuck:
            stuck_sock = subscribed_socket(path, rcvbuf=1024)  # and never read again
        period = 1.0 / rate
        start = time.perf_counter()
        for i, event in enumerate(events):
            delay = start + i * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter_ns()
            server.publish(event)
            publish_cost_ns[i] = time.perf_counter_ns() - t0
            publish_ns[i] = t0
        records = parent_end.recv()
        reader.join(10)
        stats = server.stats()
    finally:
        if stuck_sock is not None:
            stuck_sock.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    latencies = []  # ms, per (event, reader)
    first, last = [], []
    tenth = max(n_events // 10, 1)
    for rec in records:
        lat = (rec[:, 1] - publish_ns[rec[:, 0]]) / 1e6
        latencies.append(lat)
        first.append(lat[rec[:, 0] < tenth])
        last.append(lat[rec[:, 0] >= n_events - tenth])
    lat = np.concatenate(latencies)
    first, last = np.concatenate(first), np.concatenate(last)
    stuck_dropped = max((c.dropped for c in stats.clients), default=0) if stuck else 0
    cost_us = publish_cost_ns / 1e3
    return RunResult(
        name=name,
        readers=n_readers,
        stuck=int(stuck),
        events=n_events,
        received=int(lat.size),
        expected=n_events * n_readers,
        latency_ms_median=float(np.median(lat)),
        latency_ms_p99=float(np.percentile(lat, 99)),
        latency_ms_max=float(lat.max()),
        first_tenth_p99_ms=float(np.percentile(first, 99)),
        last_tenth_p99_ms=float(np.percentile(last, 99)),
        publish_us_median=float(np.median(cost_us)),
        publish_us_p99=float(np.percentile(cost_us, 99)),
        publish_us_max=float(cost_us.max()),
        stuck_dropped=int(stuck_dropped),
        server_drops=int(stats.drops),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="subscribers in all, the stuck one included")
    parser.add_argument("--events", type=int, default=2000, help="events published per run")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--queue-size", type=int, default=256, help="the server's per-client queue")
    parser.add_argument("--neighbours", type=int, default=5, help="neighbours per segment event (sets the line size)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind, alternating (the machine is shared)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    line_bytes = len(make_event(0, args.neighbours).to_line())
    print(
        f"{args.clients - 1} readers, {args.events} segment events of {line_bytes} B at {args.rate:g}/s, "
        f"queue {args.queue_size}, policy drop_oldest, Unix socket, {args.repeats} runs of each (alternating)"
    )
    print(f"{'run':<15}{'received':>14}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}{'p99 1st/last 10%':>19}{'publish() us med/p99/max':>26}{'stuck drops':>13}")
    runs = []
    for _ in range(args.repeats):
        for name, stuck in (("readers", False), ("readers+stuck", True)):
            r = run_once(name, args.clients, stuck, args.events, args.rate, args.queue_size, args.neighbours)
            runs.append(r)
            print(
                f"{r.name:<15}{f'{r.received}/{r.expected}':>14}{r.latency_ms_median:>11.3f}{r.latency_ms_p99:>9.3f}{r.latency_ms_max:>9.2f}"
                f"{f'{r.first_tenth_p99_ms:.2f}/{r.last_tenth_p99_ms:.2f}':>19}"
                f"{f'{r.publish_us_median:.1f}/{r.publish_us_p99:.1f}/{r.publish_us_max:.0f}':>26}{r.stuck_dropped:>13}",
                flush=True,
            )
    summary = {}
    for name in ("readers", "readers+stuck"):
        mine = [r for r in runs if r.name == name]
        summary[name] = {
            "latency_ms_median": float(np.median([r.latency_ms_median for r in mine])),
            "latency_ms_p99": float(np.median([r.latency_ms_p99 for r in mine])),
            "publish_us_median": float(np.median([r.publish_us_median for r in mine])),
            "complete": all(r.received == r.expected for r in mine),
        }
        s = summary[name]
        print(
            f"{name}: median over runs of the latency median {s['latency_ms_median']:.3f} ms, of the p99 {s['latency_ms_p99']:.3f} ms; "
            f"publish() {s['publish_us_median']:.0f} us; every event reached every reader: {s['complete']}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"line_bytes": line_bytes, "rate": args.rate, "queue_size": args.queue_size, "summary": summary, "runs": [asdict(r) for r in runs]},
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
