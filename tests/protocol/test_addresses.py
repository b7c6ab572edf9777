"""Socket addresses: URIs, loopback-only TCP, the default socket path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_asc.protocol.addresses import ServerError, default_socket_path, parse_uri
from edge_asc.protocol.server import EventServer
from .support import make_hello


# --- addresses -------------------------------------------------------------------------------------


def test_socket_uris_are_parsed_and_bad_ones_are_named_errors():
    assert parse_uri("unix:///run/edge-asc/edge-asc.sock").path == Path("/run/edge-asc/edge-asc.sock")
    assert parse_uri("/tmp/x.sock").scheme == "unix"
    tcp = parse_uri("tcp://127.0.0.1:7373")
    assert (tcp.host, tcp.port, tcp.is_loopback) == ("127.0.0.1", 7373, True)
    assert parse_uri("tcp://[::1]:7373").uri == "tcp://[::1]:7373"
    for bad, message in [
        ("unix://relative.sock", "absolute path"),
        ("tcp://127.0.0.1", "tcp://HOST:PORT"),
        ("tcp://127.0.0.1:99999", "out of range"),
        ("http://127.0.0.1:80", "unsupported address scheme 'http'"),
    ]:
        with pytest.raises(ServerError, match=message):
            parse_uri(bad)


def test_non_loopback_tcp_is_refused_unless_allowed():
    with pytest.raises(ServerError, match="refusing a non-loopback address"):
        EventServer(["tcp://0.0.0.0:7373"], make_hello, lambda r: None)
    EventServer(["tcp://0.0.0.0:7373"], make_hello, lambda r: None, allow_remote=True)  # not started
    with pytest.raises(ServerError, match="slow_policy 'block' is not accepted"):
        EventServer(["tcp://127.0.0.1:0"], make_hello, lambda r: None, slow_policy="block")


def test_the_default_socket_is_in_the_runtime_directory_else_run_else_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path() == tmp_path / "edge-asc" / "edge-asc.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    expected = Path("/run/edge-asc/edge-asc.sock") if Path("/run/edge-asc").is_dir() else Path(f"/tmp/edge-asc-{os.getuid()}/edge-asc.sock")
    assert default_socket_path() == expected


def test_socket_directories_created_for_the_daemon_get_0750_whatever_the_umask(sock_dir):
    import os
    import stat

    from edge_asc.protocol.sockets import DIR_MODE, listen_unix

    path = sock_dir / "a" / "b" / "edge-asc.sock"
    old = os.umask(0)
    try:
        sock, _ = listen_unix(path)
    finally:
        os.umask(old)
    sock.close()
    for d in (sock_dir / "a", sock_dir / "a" / "b"):
        assert stat.S_IMODE(os.stat(d).st_mode) == DIR_MODE == 0o750
