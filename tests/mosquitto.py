"""A real mosquitto broker on a free loopback port, for the MQTT tests (its own config file, no persistence).

Tests that need it use the ``broker`` fixture of tests/conftest.py, which skips them, saying why, when the
mosquitto binary is missing (Debian: apt-get install mosquitto mosquitto-clients; scripts/setup-dev.sh).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """``start()`` / ``stop()`` may be called again: the broker comes back on the same port, empty."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None) -> None:
        """``users``: name -> password; then anonymous clients are refused."""
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        auth = "allow_anonymous true\n"
        if users:
            passwords = directory / "passwords"
            passwords.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", str(passwords), name, password], check=True, capture_output=True)
            auth = f"allow_anonymous false\npassword_file {passwords}\n"
        stay = "user root\n" if os.geteuid() == 0 else ""  # as root mosquitto would become user mosquitto, who cannot read tmp
        self.config.write_text(f"listener {self.port} 127.0.0.1\n{auth}persistence false\n{stay}")
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 10.0) -> None:
        self._log = open(self.directory / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mosquitto did not start:\n{self.log()}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Subscriber:
    """A real MQTT client (paho) that records every message it gets, in order, with its retain flag."""

    def __init__(self, port: int, topics: list[str], client_id: str = "test-subscriber") -> None:
        import threading

        import paho.mqtt.client as paho

        self.messages: list[tuple[str, bytes, bool]] = []  # (topic, payload, retained)
        self._cond = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "a message"):
        """Wait until ``predicate(messages)`` is true (returns its value)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (found := predicate(self.messages)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout} s; got {[(t, p[:80]) for t, p, _ in self.messages[-20:]]}")
                self._cond.wait(left)
            return found

    def wait_message(self, topic: str, payload: bytes | None = None, after: int = 0, timeout: float = 20.0) -> int:
        """Index of the first message on ``topic`` (with ``payload``) at index ``after`` or later."""
        def find(msgs):
            return next((i + 1 for i in range(after, len(msgs)) if msgs[i][0] == topic and (payload is None or msgs[i][1] == payload)), None)
        return self.wait_for(find, timeout, f"{topic} {payload!r}") - 1

    def on(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def publish(self, topic: str, payload: bytes | str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
