"""The server's limits on real sockets: a flooding client is rate limited without delaying others, clients
beyond max_clients are told busy, TCP clients change settings only with the token, trouble is logged per burst."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import pytest

from edge_asc.protocol.limits import BurstLog, RequestBudget, TokenError, read_token_file
from edge_asc.protocol.messages import Error, Pong, Scene, Set

from .support import Server, connected, make_scene

TOKEN = "0123456789abcdef0123456789abcdef"


def _raw(uri: str) -> socket.socket:
    host, port = uri.removeprefix("tcp://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def _lines_until(sock: socket.socket, predicate, limit: int = 10_000) -> list[dict]:
    buf, out = b"", []
    while len(out) < limit:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            out.append(json.loads(line))
            if predicate(out[-1]):
                return out
        chunk = sock.recv(65536)
        if not chunk:
            return out
        buf += chunk
    return out


def test_a_flooding_client_is_rate_limited_counted_and_does_not_delay_another_clients_events():
    with Server(["tcp://127.0.0.1:0"], request_rate=50) as server:
        uri = server.uris[0]
        good = connected(uri)
        flooder = _raw(uri)
        stop = threading.Event()

        def flood():
            line = b'{"type":"ping"}\n' * 1000
            while not stop.is_set():
                try:
                    flooder.sendall(line)
                except OSError:
                    return

        threading.Thread(target=flood, daemon=True).start()
        try:
            delays = []
            for i in range(20):
                t0 = time.monotonic()
                server.publish(make_scene(i))
                event = good.read()
                while not isinstance(event, Scene):
                    event = good.read()
                delays.append(time.monotonic() - t0)
                time.sleep(0.02)
            lines = _lines_until(flooder, lambda e: e.get("code") == "rate_limited")
        finally:
            stop.set()
        limited = lines[-1]
        assert limited["type"] == "error" and limited["count"] > 0 and "more than 50 requests a second" in limited["message"]
        assert sum(1 for e in lines if e["type"] == "pong") <= 2 * 50 + 5  # the burst, then the rate
        assert server.stats().rate_limited > 0
        assert sorted(delays)[len(delays) // 2] < 0.05, delays  # the good client's median delivery stays quick
        good.close()
        flooder.close()


def test_clients_beyond_max_clients_are_told_busy_and_closed():
    with Server(["tcp://127.0.0.1:0"], max_clients=2) as server:
        uri = server.uris[0]
        kept = [connected(uri), connected(uri)]
        third = _raw(uri)
        lines = _lines_until(third, lambda e: False)
        assert [(e["type"], e["code"]) for e in lines] == [("error", "busy")]
        assert "maximum of 2 TCP clients" in lines[0]["message"]
        kept[0].close()
        third.close()
        deadline = time.monotonic() + 10
        while server.stats().subscribers > 1 and time.monotonic() < deadline:
            server.publish(make_scene())  # a write to the closed client's socket fails: its place is freed
            time.sleep(0.05)
        again = connected(uri)  # a place is free again
        again.close()
        kept[1].close()


@pytest.mark.parametrize("token", [None, TOKEN])
def test_a_tcp_client_without_the_token_only_reads_and_with_it_may_change_settings(token):
    srv = Server(["tcp://127.0.0.1:0"], tcp_read_only=True, tcp_token=token)
    with srv as server:
        sock = _raw(server.uris[0])
        sock.sendall(b'{"type":"set","k":5}\n{"type":"ping"}\n')
        lines = _lines_until(sock, lambda e: e["type"] == "pong")
        refused = [e for e in lines if e["type"] == "error"]
        assert [e["code"] for e in refused] == ["unauthorized"] and srv.requests == []
        sock.sendall(b'{"type":"auth","token":"not the token at all"}\n{"type":"ping"}\n')
        lines = _lines_until(sock, lambda e: e["type"] == "pong")
        assert [e["code"] for e in lines if e["type"] == "error"] == ["unauthorized"]
        if token is not None:
            sock.sendall(json.dumps({"type": "auth", "token": TOKEN}).encode() + b'\n{"type":"set","k":5}\n{"type":"ping"}\n')
            lines = _lines_until(sock, lambda e: e["type"] == "pong" and srv.requests)
            assert srv.requests == [Set(k=5)]
        sock.close()


def test_guessing_the_token_closes_the_connection_after_a_few_tries():
    with Server(["tcp://127.0.0.1:0"], tcp_token=TOKEN) as server:
        sock = _raw(server.uris[0])
        sock.sendall(b'{"type":"auth","token":"guess"}\n' * 20)
        lines = _lines_until(sock, lambda e: False)
        assert lines[-1]["code"] == "bad_request" and "closing the connection" in lines[-1]["message"]


def test_the_unix_socket_stays_trusted_when_tcp_is_read_only(sock_dir):
    srv = Server([f"unix://{sock_dir}/s.sock"], tcp_read_only=True)
    with srv as server:
        client = connected(server.uris[0])
        client.set(k=5)
        client.ping()
        while not isinstance(client.read(), Pong):
            pass
        assert srv.requests == [Set(k=5)]
        client.close()


def test_a_token_file_others_may_read_or_too_short_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o640)
    assert read_token_file(path) == TOKEN
    os.chmod(path, 0o644)
    with pytest.raises(TokenError, match="may be read or written by other users"):
        read_token_file(path)
    path.write_text("short\n")
    os.chmod(path, 0o600)
    with pytest.raises(TokenError, match="at least 16 characters"):
        read_token_file(path)


def test_a_budget_allows_a_burst_then_the_rate():
    budget = RequestBudget(10)
    now = budget.stamp
    assert sum(budget.take(now) for _ in range(100)) == 20 and budget.refused == 80
    assert sum(budget.take(now + 1.0) for _ in range(100)) == 10


def test_a_burst_of_the_same_trouble_is_one_line_then_one_count(caplog):
    logger = logging.getLogger("edge_asc.protocol.server")
    burst = BurstLog(logger, "cannot accept a connection")
    with caplog.at_level(logging.WARNING, logger="edge_asc.protocol.server"):
        for i in range(10_000):
            burst.hit("Too many open files", now=100.0 + i * 0.001)
        burst.hit("Too many open files", now=200.0)
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == [
        "Too many open files (further ones are counted, not logged, until 10 s pass without one)",
        "10000 times in the last burst",
        "Too many open files (further ones are counted, not logged, until 10 s pass without one)",
    ]


SERVER_WITH_FEW_FDS = """
import logging, resource, sys, time
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
from edge_asc.protocol.server import EventServer
from edge_asc.protocol.messages import Hello
hello = lambda: Hello(1, ("a",), 1, "window", 0.3, 16000, "0" * 64, "x")
server = EventServer(["tcp://127.0.0.1:0"], hello, lambda r: None, max_clients=1000)
server.start()
resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))  # accept() runs out of descriptors after a few dozen clients
print(server.uris[0], flush=True)
time.sleep(float(sys.argv[1]))
server.stop()
"""


def test_accept_failing_for_lack_of_descriptors_is_logged_once_per_burst_without_tracebacks():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", SERVER_WITH_FEW_FDS, "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    uri = proc.stdout.readline().strip()
    clients = []
    for _ in range(200):
        try:
            clients.append(_raw(uri))
        except OSError:
            break
    time.sleep(2.5)  # the server retries accept() about once a second meanwhile
    for c in clients:
        c.close()
    err = proc.communicate(timeout=30)[1]
    accept_lines = [line for line in err.splitlines() if "cannot accept a connection" in line]
    assert len(clients) > 40  # connected (queued in the backlog) beyond what the server could accept
    assert "Traceback" not in err and len(accept_lines) == 1, err[-3000:]
    assert "Too many open files" in accept_lines[0]


def test_the_python_client_sends_its_token_and_may_then_change_settings():
    from edge_asc.protocol.client import Client

    srv = Server(["tcp://127.0.0.1:0"], tcp_token=TOKEN)
    with srv as server:
        with Client(server.uris[0], timeout=10, token=TOKEN) as client:
            assert isinstance(client.read(), Pong)  # the answer to auth
            client.set(k=5)
            client.ping()
            assert isinstance(client.read(), Pong)
        assert srv.requests == [Set(k=5)]
