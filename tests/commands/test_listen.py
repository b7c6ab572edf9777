"""edge-asc listen: prints the events and exits 0 when the daemon stops or on SIGINT; no daemon is a clear error."""

from __future__ import annotations

import signal
import subprocess
import sys

from edge_asc.protocol.messages import PROTOCOL_VERSION, Event
from protocol.support import Server, TIMEOUT, make_hello, make_scene, make_segment, make_status, read_lines_until, wait_for


def listen_command(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "edge_asc", "listen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )


def test_listen_prints_events_and_exits_0_when_the_daemon_stops(sock_dir):
    harness = Server([f"unix://{sock_dir}/s.sock"])
    with harness as server:
        proc = listen_command("--socket", f"{sock_dir}/s.sock", "--events", "segment,scene")
        wait_for(lambda: server.has_subscribers("segment"), timeout=30, what="listen to subscribe")
        server.publish(make_segment(0))
        server.publish(make_status())  # not subscribed
        server.publish(make_scene())
        lines = read_lines_until(proc.stdout, lambda d: d["type"] == "scene")
    assert [Event.from_json(d) for d in lines] == [make_hello(), make_segment(0), make_scene()]
    assert proc.wait(TIMEOUT) == 0
    assert proc.stdout.read() == b""


def test_listen_exits_0_on_sigint(sock_dir):
    with Server(["tcp://127.0.0.1:0"]) as server:
        host_port = server.uris[0].removeprefix("tcp://")
        proc = listen_command("--tcp", host_port)
        lines = read_lines_until(proc.stdout, lambda d: d["type"] == "hello", timeout=30)
        assert lines[0]["protocol"] == PROTOCOL_VERSION
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0


def test_listen_without_a_daemon_is_a_clear_error(sock_dir):
    proc = listen_command("--socket", f"{sock_dir}/missing.sock")
    assert proc.wait(30) == 1
    assert f"no edge-asc daemon: no socket at {sock_dir}/missing.sock" in proc.stderr.read().decode()


def test_socket_path_prints_the_socket_a_daemon_of_this_user_listens_on(tmp_path, monkeypatch, capsys):
    from edge_asc.cli import main

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert main(["listen", "--socket-path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "edge-asc" / "edge-asc.sock")
    assert main(["listen", "--socket-path", "--socket", "/run/x.sock"]) == 0
    assert capsys.readouterr().out.strip() == "/run/x.sock"
