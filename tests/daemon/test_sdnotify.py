"""sd_notify: READY, WATCHDOG and STOPPING sent to the NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import os
import socket


from edge_asc.daemon.sdnotify import Notifier

# --- sd_notify --------------------------------------------------------------------------------------


def test_notifier_sends_ready_watchdog_stopping_to_a_datagram_socket(tmp_path, monkeypatch):
    addr = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(addr))
    sock.settimeout(2.0)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier(str(addr))
    assert n.watchdog_interval == 1.0
    assert n.ready("serving")
    assert n.watchdog(now=10.0) and not n.watchdog(now=10.5) and n.watchdog(now=11.1)
    assert n.stopping()
    got = [sock.recv(100).decode() for _ in range(4)]
    assert got == ["READY=1\nSTATUS=serving", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    n.close()
    sock.close()
    assert not Notifier("").enabled and not Notifier("").ready()
