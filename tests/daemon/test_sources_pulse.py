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
