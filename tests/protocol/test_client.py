"""The client helper: connecting, reading the chosen events, trusting only a private socket directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from edge_asc.protocol.client import Client, DaemonNotRunning, iter_events
from edge_asc.protocol.messages import Error
from .support import Server, TIMEOUT, make_hello, make_scene, make_segment, wait_for


def test_the_client_only_trusts_a_private_tmp_fallback_directory(sock_dir, monkeypatch):
    from edge_asc.protocol import addresses as servermod
    from edge_asc.protocol.client import find_socket_path

    monkeypatch.setattr(servermod, "TMP_ROOT", sock_dir)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(servermod, "SYSTEM_SOCKET_DIR", sock_dir / "no-run-dir")
    private = servermod.tmp_socket_dir()
    path = private / "edge-asc.sock"
    with Server([f"unix://{path}"]):
        assert find_socket_path() == path  # ours, 0700: found
        os.chmod(private, 0o777)  # anyone could have replaced the socket
        with pytest.raises(DaemonNotRunning, match="not connecting to .*may be written by group or others"):
            find_socket_path()
        with pytest.raises(DaemonNotRunning, match="may be written by group or others"):
            Client(timeout=1.0).connect()
        os.chmod(private, 0o700)
        assert find_socket_path() == path


def test_iter_events_yields_hello_then_the_chosen_events(sock_dir):
    with Server([f"unix://{sock_dir}/s.sock"]) as server:
        received = []
        reader = threading.Thread(target=lambda: received.extend(iter_events(server.uris[0], events=("segment",), timeout=TIMEOUT)))
        reader.start()
        wait_for(lambda: server.has_subscribers("segment"), what="the subscription")
        server.publish(make_scene())  # not asked for
        server.publish(make_segment(0))
        server.publish(Error("source_lost", "gone"))
    reader.join(TIMEOUT)
    assert received == [make_hello(), make_segment(0), Error("source_lost", "gone")]


def test_client_errors_name_the_address(sock_dir):
    with pytest.raises(DaemonNotRunning, match=f"no socket at {sock_dir}/none.sock"):
        Client(f"{sock_dir}/none.sock").connect()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_dir / "stale.sock"))
    stale.close()
    with pytest.raises(DaemonNotRunning, match="stale"):
        list(iter_events(f"unix://{sock_dir}/stale.sock"))


def test_the_client_side_imports_no_training_libraries():
    code = "import sys, edge_asc.protocol.messages, edge_asc.protocol.server, edge_asc.protocol.client, edge_asc.commands.listen; print(sorted({'torch', 'librosa', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
