"""The socket server over real sockets and threads: the socket file, serving, malformed and slow clients, socat."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import statistics
import subprocess
import threading
import time

import pytest

from edge_asc.protocol import messages as protocol
from edge_asc.protocol.client import Client
from edge_asc.protocol.records import ProtocolError
from edge_asc.protocol.messages import (
    Error,
    Event,
    Ping,
    Pong,
    Set,
    Subscribe,
)
from edge_asc.protocol.addresses import ServerError, parse_uri
from edge_asc.protocol.server import EventServer
from .support import (
    ALL_EVENTS,
    LABELS,
    TIMEOUT,
    Server,
    connected,
    make_hello,
    make_scene,
    make_segment,
    make_status,
    read_lines_until,
    read_until_closed,
    wait_for,
)


# --- the socket file ---------------------------------------------------------------------------------


def test_unix_socket_mode_directory_and_removal(sock_dir):
    path = sock_dir / "run" / "edge-asc" / "edge-asc.sock"
    with Server([f"unix://{path}"]):
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
        assert path.parent.is_dir()
    assert not path.exists()


def test_stale_socket_is_replaced_live_one_refused(sock_dir):
    path = sock_dir / "edge-asc.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a killed daemon leaves behind
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    with Server([f"unix://{path}"]) as first:
        with pytest.raises(ServerError, match=f"another daemon is already listening on {path}"):
            EventServer([f"unix://{path}"], make_hello, lambda r: None).start()
        client = connected(first.uris[0])  # the first daemon is unharmed and keeps its socket
        first.publish(make_scene())
        assert client.read() == make_scene()
        client.close()
    assert not path.exists()


def test_a_file_that_is_not_a_socket_is_not_replaced(sock_dir):
    path = sock_dir / "edge-asc.sock"
    path.write_text("precious")
    with pytest.raises(ServerError, match="exists and is not a socket"):
        EventServer([f"unix://{path}"], make_hello, lambda r: None).start()
    assert path.read_text() == "precious"


def test_the_tmp_fallback_directory_is_private_or_refused(sock_dir, monkeypatch):
    from edge_asc.protocol import addresses as servermod

    monkeypatch.setattr(servermod, "TMP_ROOT", sock_dir)
    private = servermod.tmp_socket_dir()
    path = private / "edge-asc.sock"
    with Server([f"unix://{path}"]):  # absent: created, this user only
        st = os.lstat(private)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077 == 0 and st.st_uid == os.getuid()
    os.rmdir(private)
    elsewhere = sock_dir / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    private.symlink_to(elsewhere)
    with pytest.raises(ServerError, match="is not a directory"):
        EventServer([f"unix://{path}"], make_hello, lambda r: None).start()
    private.unlink()
    private.mkdir()
    os.chmod(private, 0o777)
    with pytest.raises(ServerError, match="may be written by group or others"):
        EventServer([f"unix://{path}"], make_hello, lambda r: None).start()
    os.chmod(private, 0o700)
    if os.getuid() == 0:  # only root can give a directory away
        os.chown(private, 12345, -1)
        with pytest.raises(ServerError, match="belongs to uid 12345"):
            EventServer([f"unix://{path}"], make_hello, lambda r: None).start()
        os.chown(private, 0, -1)
    with Server([f"unix://{path}"]):  # ours, 0700: used
        assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_tcp_port_in_use_is_a_clear_error():
    with Server(["tcp://127.0.0.1:0"]) as first:
        with pytest.raises(ServerError, match=f"cannot listen on {first.uris[0]}"):
            EventServer(first.uris, make_hello, lambda r: None).start()


# --- serving -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
def test_every_event_type_arrives_over_a_real_socket(scheme, sock_dir):
    uri = f"unix://{sock_dir}/s.sock" if scheme == "unix" else "tcp://127.0.0.1:0"
    with Server([uri]) as server:
        client = Client(server.uris[0], timeout=TIMEOUT)
        assert client.connect() == make_hello()
        client.subscribe(["scene", "segment", "status"])
        client.ping()
        assert isinstance(client.read(), Pong)
        for event in ALL_EVENTS:
            server.publish(event)
        assert [client.read() for _ in ALL_EVENTS] == ALL_EVENTS
        client.close()


def test_subscriptions_choose_the_streamed_events(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        default = connected(server.uris[0])
        segments_only = connected(server.uris[0], ["segment"])
        assert server.has_subscribers("segment") and server.has_subscribers("scene")
        for event in (make_segment(0), make_scene(), make_status(), Error("source_lost", "gone"), make_segment(1)):
            server.publish(event)
        server.publish(Error("source_back", "back"))
        assert [default.read().type for _ in range(4)] == ["scene", "status", "error", "error"]
        assert [(e.type, getattr(e, "index", None)) for e in (segments_only.read() for _ in range(4))] == [
            ("segment", 0),
            ("error", None),
            ("segment", 1),
            ("error", None),
        ]
        segments_only.subscribe([])
        segments_only.ping()
        assert isinstance(segments_only.read(), Pong)
        wait_for(lambda: not server.has_subscribers("segment"), what="segment subscription to end")
        default.close()
        segments_only.close()


def test_requests_go_to_the_handler_and_replies_to_the_sender_only(sock_dir):
    harness = Server([f"unix://{sock_dir}/s.sock"])

    def reply(request):
        if request.k == 99:
            raise ProtocolError("set.k: at most 50 segments")
        if request.k == 13:
            raise RuntimeError("pipeline exploded")
        return make_hello(k=request.k or 5, mode=request.mode or "window")

    harness.reply = reply
    with harness as server:
        asker, other = connected(server.uris[0]), connected(server.uris[0])
        asker.set(k=3, mode="sliding")
        assert asker.read() == make_hello(k=3, mode="sliding")
        asker.set(k=99)
        error = asker.read()
        assert (error.code, error.message, error.request) == ("bad_request", "set.k: at most 50 segments", '{"type":"set","v":1,"k":99}')
        asker.set(k=13)
        error = asker.read()
        assert error.code == "internal" and "pipeline exploded" in error.message
        asker.ping()
        assert isinstance(asker.read(), Pong)  # still served
        assert harness.requests == [Set(k=3, mode="sliding"), Set(k=99), Set(k=13)]
        server.publish(make_scene())
        assert other.read() == make_scene()  # the replies went to the asker only
        asker.close()
        other.close()


def test_malformed_requests_get_errors_and_harm_nobody(sock_dir):
    garbage = [
        b"not json at all",
        b"\x00\xff\xfe binary",
        b"[1, 2, 3]",
        b'{"type": "reboot"}',
        b'{"type": "set", "k": "five"}',
        b'{"type": "subscribe", "events": ["hello"]}',
    ]
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        good = connected(server.uris[0])
        bad = connected(server.uris[0])
        for i, line in enumerate(garbage):
            bad._sock.sendall(line + b"\n")
            error = bad.read()
            assert error.type == "error" and error.code == "bad_request" and error.request
            assert error.request == protocol.preview(line)
            server.publish(make_scene(i))
            assert bad.read() == make_scene(i)  # still subscribed and served
            assert good.read() == make_scene(i)
        bad._sock.sendall(b"\n\n")  # empty lines are ignored
        bad.ping()
        assert isinstance(bad.read(), Pong)
        assert server.stats().subscribers == 2
        good.close()
        bad.close()


def test_an_over_long_line_is_one_bad_request_and_the_connection_stays(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"], max_request_bytes=1024) as server:
        client = connected(server.uris[0])
        client._sock.sendall(b'{"type":"ping","pad":"' + b"x" * 200_000 + b'"}\n')
        client.ping()
        error = client.read()
        assert error.code == "bad_request" and "longer than 1024 bytes" in error.message
        assert isinstance(client.read(), Pong)
        client.close()


def test_an_abusive_client_is_disconnected_and_others_are_unharmed(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        good = connected(server.uris[0])
        abuser = connected(server.uris[0])
        abuser._sock.sendall(b"junk\n" * 50)
        errors = read_until_closed(abuser)
        assert all(e.code == "bad_request" for e in errors)
        assert len(errors) == 9 and "bad requests in a row; closing" in errors[-1].message
        server.publish(make_scene())
        assert good.read() == make_scene()
        wait_for(lambda: server.stats().subscribers == 1, what="the abuser to be gone")
        good.close()
        abuser.close()


def test_an_endless_line_closes_the_connection(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        client = connected(server.uris[0])
        try:
            client._sock.sendall(b"x" * (2 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close while we are still sending: that is the point
        events = read_until_closed(client)
        assert [e.code for e in events] == ["bad_request", "bad_request"]
        assert "closing the connection" in events[-1].message
        client.close()


def test_a_client_that_stops_sending_keeps_receiving(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        sock = subscribed_raw_socket(server.uris[0])
        sock.shutdown(socket.SHUT_WR)  # what `echo ... | socat -t 1e9 - UNIX-CONNECT:...` does
        lines = raw_lines(sock)
        time.sleep(0.05)  # let the server see the end of the client's input
        server.publish(make_segment(1))
        assert Event.from_line(next(lines)) == make_segment(1)
        assert server.stats().subscribers == 1
        sock.close()


def test_stats_count_subscribers_and_publish_refuses_a_request(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        a, b = connected(server.uris[0]), connected(server.uris[0], ["segment", "status"])
        server.publish(make_scene())
        assert a.read() == make_scene()
        stats = server.stats()
        assert (stats.subscribers, stats.drops, stats.disconnects, stats.published) == (2, 0, 0, 1)
        assert sorted(c.events for c in stats.clients) == [("scene", "status"), ("segment", "status")]
        with pytest.raises(TypeError, match=r"publish\(\) takes an event, got Ping"):
            server.publish(Ping())
        a.close()
        b.close()
    server.publish(make_scene())  # after stop: goes nowhere, raises nothing


def test_events_published_before_stop_are_delivered(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        client = connected(server.uris[0], ["segment"])
        for i in range(100):
            server.publish(make_segment(i))
    assert [e.index for e in client] == list(range(100))
    client.close()


# --- slow clients ------------------------------------------------------------------------------------


class FastReader(threading.Thread):
    """Reads raw lines as fast as it can; ``count`` lines seen."""

    def __init__(self, client: Client):
        super().__init__(daemon=True)
        self.client = client
        self.lines = []

    def run(self):
        while (line := self.client.read_line()) is not None:
            self.lines.append(line)

    @property
    def count(self):
        return len(self.lines)


def subscribed_raw_socket(uri: str, events=("segment",)) -> socket.socket:
    """A raw connection with a tiny receive buffer, subscribed to ``events`` and past the pong."""
    address = parse_uri(uri)
    if address.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(str(address.path))
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect((address.host, address.port))
    sock.sendall(Subscribe(events).to_line() + Ping().to_line())
    buf = b""
    sock.settimeout(TIMEOUT)
    while b'"pong"' not in buf:
        buf += sock.recv(4096)
    return sock


def raw_lines(sock: socket.socket):
    """The lines arriving on a raw socket."""
    sock.settimeout(TIMEOUT)
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk


def publish_in_rounds(server, fast: FastReader, n_events: int, round_size: int, after_round=None):
    """Publish ``make_segment`` events in rounds, waiting for the fast reader after each round.

    Returns the duration of every publish() call and the time the fast reader took to get each round.
    """
    publish_s, catch_up_s = [], []
    big = [make_segment(i, n_neighbours=60) for i in range(n_events)]  # ~3.5 kB per line
    start_count = fast.count
    for start in range(0, n_events, round_size):
        began = time.perf_counter()
        for event in big[start : start + round_size]:
            t0 = time.perf_counter()
            server.publish(event)
            publish_s.append(time.perf_counter() - t0)
        target = start_count + min(start + round_size, n_events)
        wait_for(lambda: fast.count >= target, what="the fast reader")
        catch_up_s.append(time.perf_counter() - began)
        if after_round is not None and after_round():
            break
    return publish_s, catch_up_s


def check_fast_client(fast: FastReader, n_events: int):
    indices = [json.loads(line)["index"] for line in fast.lines if b'"segment"' in line]
    assert indices == list(range(n_events))  # everything, in order


def check_flat(publish_s, catch_up_s):
    """Neither the caller of publish() nor the fast reader slowed down once the stuck client was full."""
    assert max(publish_s) < 0.05, f"a publish() call took {max(publish_s) * 1e3:.1f} ms"
    half = len(publish_s) // 2
    early, late = statistics.median(publish_s[:half]), statistics.median(publish_s[half:])
    assert late < max(5 * early, 0.001), f"publish() median went from {early * 1e6:.0f} to {late * 1e6:.0f} us"
    quarter = max(len(catch_up_s) // 4, 1)
    early, late = statistics.median(catch_up_s[:quarter]), statistics.median(catch_up_s[-quarter:])
    assert late < max(5 * early, 0.05), f"the fast reader's round time went from {early * 1e3:.1f} to {late * 1e3:.1f} ms"


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
def test_a_stuck_client_loses_its_oldest_events_and_delays_nobody(scheme, sock_dir):
    n_events, queue_size = 800, 64
    uri = f"unix://{sock_dir}/s.sock" if scheme == "unix" else "tcp://127.0.0.1:0"
    with Server([uri], queue_size=queue_size, slow_policy="drop_oldest") as server:
        fast = FastReader(connected(server.uris[0], ["segment"]))
        fast.start()
        stuck = subscribed_raw_socket(server.uris[0])  # and never read again
        publish_s, catch_up_s = publish_in_rounds(server, fast, n_events, round_size=16)
        check_fast_client(fast, n_events)
        check_flat(publish_s, catch_up_s)

        stats = server.stats()
        stuck_stats = max(stats.clients, key=lambda c: c.dropped)
        assert stuck_stats.dropped > 0 and stats.drops == stuck_stats.dropped
        assert stuck_stats.queued == queue_size  # bounded
        assert stats.subscribers == 2 and stats.disconnects == 0

        # The stuck client wakes up: every event is either received or counted in a "dropped"
        # error standing exactly where the lost events were.
        received, reported = [], 0
        expected_next = 0
        lines = raw_lines(stuck)
        while expected_next < n_events:
            event = Event.from_line(next(lines))
            if isinstance(event, Error):
                assert event.code == "dropped" and event.count > 0
                expected_next += event.count
                reported += event.count
            else:
                assert event.index == expected_next
                received.append(event.index)
                expected_next += 1
        assert expected_next == n_events and reported == stuck_stats.dropped
        assert len(received) + reported == n_events
        stuck.close()
    fast.join(TIMEOUT)  # the server's stop ended its connection
    fast.client.close()


def test_a_stuck_client_is_disconnected_under_the_disconnect_policy(sock_dir):
    n_events = 800
    with Server([f"unix://{sock_dir}/s.sock"], queue_size=32, slow_policy="disconnect") as server:
        fast = FastReader(connected(server.uris[0], ["segment"]))
        fast.start()
        stuck = subscribed_raw_socket(server.uris[0])  # and never read again
        publish_s, catch_up_s = publish_in_rounds(server, fast, n_events, round_size=16)
        check_fast_client(fast, n_events)
        check_flat(publish_s, catch_up_s)
        stats = server.stats()
        assert stats.disconnects == 1 and stats.subscribers == 1 and stats.drops > 0
        # What the stuck client can still read ends with the connection closed, not with a wait.
        stuck.settimeout(TIMEOUT)
        try:
            while stuck.recv(65536):
                pass
        except ConnectionResetError:
            pass  # an abort may reach the peer as a reset: equally closed
        stuck.close()
    fast.join(TIMEOUT)
    fast.client.close()


# --- socat and the listen command --------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
def test_socat_is_a_client(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        proc = subprocess.Popen(
            ["socat", "-", f"UNIX-CONNECT:{sock_dir}/s.sock"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        try:
            proc.stdin.write(b'{"type":"subscribe","events":["segment"]}\n{"type":"ping"}\n')
            lines = read_lines_until(proc.stdout, lambda d: d["type"] == "pong")
            assert [d["type"] for d in lines] == ["hello", "pong"] and lines[0]["labels"] == list(LABELS)
            server.publish(make_scene())  # not subscribed
            server.publish(make_segment(3))
            (line,) = read_lines_until(proc.stdout, lambda d: True)
            assert Event.from_json(line) == make_segment(3)
            proc.stdin.write(b"garbage\n")
            (line,) = read_lines_until(proc.stdout, lambda d: True)
            assert (line["type"], line["code"], line["request"]) == ("error", "bad_request", "garbage")
        finally:
            proc.stdin.close()  # socat half-closes, waits 0.5 s for more and exits
            assert proc.wait(TIMEOUT) == 0
