"""The real microphone path: PulseAudio null sink -> its monitor -> PortAudio (ALSA 'pulse' plugin) -> daemon.

A private PulseAudio server (own XDG_RUNTIME_DIR) gets a null sink ``edgeasc`` whose monitor is the
default source; ``paplay`` plays a generated scene clip (conftest.tiny_artifacts) into the sink and the daemon captures the
monitor with sounddevice's ``pulse`` device, exactly as it would capture a microphone. Needs the
packages pulseaudio, pulseaudio-utils and libasound2-plugins (skipped, saying so, without pulseaudio).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from edge_asc.protocol.client import Client
from edge_asc.protocol.messages import Error, Scene

from conftest import WRAPPER

from .test_daemon import _artifact_args

PULSE_SCRIPT = """\
load-module module-native-protocol-unix
load-module module-null-sink sink_name=edgeasc rate=44100 channels=2
set-default-sink edgeasc
set-default-source edgeasc.monitor
"""


class Pulse:
    def __init__(self) -> None:
        # a short path: the server's socket path must fit in sun_path (108 bytes)
        self.dir = Path(tempfile.mkdtemp(prefix="edge-asc-pulse-"))
        os.chmod(self.dir, 0o700)
        (self.dir / "edgeasc.pa").write_text(PULSE_SCRIPT)
        self.env = dict(os.environ, XDG_RUNTIME_DIR=str(self.dir), HOME=str(self.dir), OMP_NUM_THREADS="1")
        self.env.pop("PULSE_SERVER", None)
        self.proc: subprocess.Popen | None = None
        self.log = open(self.dir / "pulse.log", "ab")

    def start(self) -> None:
        cmd = [shutil.which("pulseaudio"), "--daemonize=no", "--exit-idle-time=-1", "-n", "-F", str(self.dir / "edgeasc.pa"), "--disallow-exit", "--log-target=stderr"]
        if os.geteuid() == 0:
            cmd.insert(1, "--system=false")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"pulseaudio did not start: {(self.dir / 'pulse.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def play(self, path: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "--device=edgeasc", str(path)], env=self.env, stderr=subprocess.PIPE)

    def close(self) -> None:
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pulse():
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio is not installed (apt install pulseaudio pulseaudio-utils libasound2-plugins)")
    for tool in ("pactl", "paplay"):
        if shutil.which(tool) is None:
            pytest.fail(f"pulseaudio is installed but {tool} is not (apt install pulseaudio-utils)")
    p = Pulse()
    p.start()
    yield p
    p.close()


def _wait_for(client: Client, predicate, timeout: float, seen: list):
    deadline = time.monotonic() + timeout
    client._connected().settimeout(timeout)
    for event in client:
        seen.append(event)
        if predicate(event):
            return event
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"not seen within {timeout} s; got {[e.type for e in seen]}")


def test_devices_lists_the_pulse_device(pulse):
    r = subprocess.run([sys.executable, "-c", WRAPPER, "devices", "--json"], env=pulse.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = [json.loads(line)["name"] for line in r.stdout.splitlines()]
    assert "pulse" in names


def test_recording_played_into_the_null_sink_reaches_a_subscriber(pulse, tiny_artifacts, tmp_path, daemons):
    # a 48 kHz stereo capture: the daemon mixes to mono and resamples to 16 kHz itself
    d = daemons(tmp_path, pulse.env, ["--source", "mic:pulse", "--rate", "48000", "--channels", "2", "--k", "3", *_artifact_args(tiny_artifacts)])
    d.wait_listening()
    seen: list = []
    with Client(str(d.socket), timeout=20) as client:
        _wait_for(client, lambda e: isinstance(e, Scene), 20, seen)  # capture is running
        player = pulse.play(tiny_artifacts.clips["street_traffic"])  # 6 s
        started = time.time()
        labels = []
        while player.poll() is None or time.time() < started + 6.5:
            event = _wait_for(client, lambda e: isinstance(e, (Scene, Error)), 10, seen)
            assert not isinstance(event, Error), event
            if event.wall_time > started + 1.0:  # the decision's audio is all from the recording
                labels.append(event.label)
        assert player.wait(10) == 0, player.stderr.read()
    assert len(labels) >= 4, labels
    assert Counter(labels).most_common(1)[0][0] == "street_traffic", labels
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0, d.log()
    assert "capturing from mic:pulse @ 48000 Hz x2" in d.log()


def test_microphone_lost_when_the_sound_server_dies_and_back_when_it_returns(pulse, tiny_artifacts, tmp_path, daemons):
    config = tmp_path / "config.yaml"
    config.write_text("audio:\n  retry_min: 0.2\n  retry_max: 0.5\n  no_data_timeout: 4.0\n")
    d = daemons(tmp_path, pulse.env, ["--config", str(config), "--source", "mic:pulse", "--k", "1", *_artifact_args(tiny_artifacts)])
    d.wait_listening()
    seen: list = []
    with Client(str(d.socket), timeout=20) as client:
        _wait_for(client, lambda e: isinstance(e, Scene), 20, seen)
        pulse.stop()  # the "microphone" goes away
        lost = _wait_for(client, lambda e: isinstance(e, Error), 10, seen)
        assert lost.code == "source_lost", lost
        time.sleep(1.0)
        assert d.proc.poll() is None  # the daemon does not exit for a lost microphone
        pulse.start()
        back = _wait_for(client, lambda e: isinstance(e, Error), 20, seen)
        assert back.code == "source_back", back
        after = _wait_for(client, lambda e: isinstance(e, Scene), 20, seen)  # decisions resume
        assert after.segment_index > max(e.segment_index for e in seen[: seen.index(lost)] if isinstance(e, Scene))
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0, d.log()
    log = d.log()
    assert "audio source lost" in log and "audio source back" in log


class WatchdogRecorder:
    """A NOTIFY_SOCKET like systemd's: the arrival time of every WATCHDOG=1, from a thread."""

    def __init__(self, path: Path) -> None:
        import socket
        import threading

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.pings: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.sock.recv(200) == b"WATCHDOG=1":
                    self.pings.append(time.monotonic())
            except (TimeoutError, OSError):
                continue

    def longest_gap(self, start: float, end: float) -> float:
        times = [start] + [t for t in self.pings if start <= t <= end] + [end]
        return max(b - a for a, b in zip(times, times[1:]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


FROZEN_S = 8.0  # how long the sound server stays stopped (WatchdogSec in the unit is 10 s)
WATCHDOG_GAP_BOUND_S = 2.5  # pings are due every second (WATCHDOG_USEC 2 s); a blocked worker would stop them


def _frozen_pulse_daemon(pulse, tiny_artifacts, tmp_path, daemons):
    config = tmp_path / "config.yaml"
    config.write_text("audio:\n  retry_min: 0.5\n  retry_max: 1.0\n  no_data_timeout: 2.0\n")
    recorder = WatchdogRecorder(tmp_path / "notify.sock")
    env = dict(pulse.env, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="2000000")
    d = daemons(tmp_path, env, ["--config", str(config), "--source", "mic:pulse", "--k", "1", *_artifact_args(tiny_artifacts)])
    d.wait_listening()
    return d, recorder


def test_a_frozen_sound_server_is_reported_lost_while_the_watchdog_is_fed_and_back_when_it_thaws(pulse, tiny_artifacts, tmp_path, daemons):
    d, recorder = _frozen_pulse_daemon(pulse, tiny_artifacts, tmp_path, daemons)
    seen: list = []
    try:
        with Client(str(d.socket), timeout=20) as client:
            _wait_for(client, lambda e: isinstance(e, Scene), 20, seen)
            frozen_at = time.monotonic()
            pulse.proc.send_signal(signal.SIGSTOP)
            try:
                lost = _wait_for(client, lambda e: isinstance(e, Error), FROZEN_S, seen)
                lost_after = time.monotonic() - frozen_at
                time.sleep(max(0.0, FROZEN_S - (time.monotonic() - frozen_at)))
                gap = recorder.longest_gap(frozen_at, time.monotonic())
            finally:
                pulse.proc.send_signal(signal.SIGCONT)
            assert lost.code == "source_lost", lost
            assert lost_after < 2.0 + 2.0, f"source_lost {lost_after:.1f} s after the freeze"
            assert gap < WATCHDOG_GAP_BOUND_S, f"no WATCHDOG=1 for {gap:.1f} s while the device was frozen:\n{d.log()}"
            back = _wait_for(client, lambda e: isinstance(e, Error), 30, seen)
            assert back.code == "source_back", back
            _wait_for(client, lambda e: isinstance(e, Scene), 20, seen)  # decisions resume
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait(15) == 0, d.log()
    finally:
        recorder.close()


SIGTERM_FROZEN_BOUND_S = 8.0  # the device close waits DEVICE_CALL_TIMEOUT_S (3 s), the rest is the normal stop


def test_sigterm_while_the_sound_server_is_frozen_exits_0_within_the_bound(pulse, tiny_artifacts, tmp_path, daemons):
    d, recorder = _frozen_pulse_daemon(pulse, tiny_artifacts, tmp_path, daemons)
    try:
        with Client(str(d.socket), timeout=20) as client:
            _wait_for(client, lambda e: isinstance(e, Scene), 20, [])
        pulse.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3.0)  # lost, and the worker's close of the stream blocked in PortAudio
            t0 = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            rc = d.wait(30)
            took = time.monotonic() - t0
        finally:
            pulse.proc.send_signal(signal.SIGCONT)
        assert rc == 0 and took < SIGTERM_FROZEN_BOUND_S, f"exit {rc} after {took:.1f} s:\n{d.log()}"
    finally:
        recorder.close()
