"""systemd's notify protocol (sd_notify) over a plain datagram socket: READY=1, WATCHDOG=1, STOPPING=1.

Does nothing when NOTIFY_SOCKET is not set (not started by systemd with Type=notify). An address that
starts with ``@`` is in the abstract namespace. The watchdog interval comes from WATCHDOG_USEC.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address = address or None
        if self.address and self.address.startswith("@"):
            self.address = "\0" + self.address[1:]
        self._sock: socket.socket | None = None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        # systemd's advice: ping at half the interval
        self.watchdog_interval = int(usec) / 2e6 if wanted else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """Send one state string; False (logged once per failure) if it could not be delivered."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self.address)
            return True
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.address.replace("\0", "@"), exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> bool:
        """WATCHDOG=1, at most once per half watchdog interval (once a second when no interval is set)."""
        if self.address is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < (self.watchdog_interval or 1.0):
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
