"""MQTT end to end: a real mosquitto (tests/mosquitto.py), the daemon as a subprocess, a real paho subscriber."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from edge_asc.protocol.client import Client
from edge_asc.protocol.messages import Error, Scene, Status

from mosquitto import Subscriber

paho = pytest.importorskip("paho.mqtt.client")

DEV = "dev1"
PREFIX = f"edge-asc/{DEV}"


def _artifact_args(art) -> list[str]:
    return ["--model", str(art.model), "--index", str(art.index)]


def _config(tmp_path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def subscriber(broker):
    subs = []

    def make(topics=(f"{PREFIX}/#",), client_id="test-subscriber"):
        s = Subscriber(broker.port, list(topics), client_id)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


class PcmFeeder:
    """Writes a clip as raw s16le PCM to the daemon's stdin, in a loop, at ``speed`` times real time."""

    def __init__(self, proc: subprocess.Popen, clip, speed: float = 3.0, chunk_s: float = 0.1) -> None:
        audio, rate = sf.read(str(clip), dtype="int16")
        self.pcm, self.proc = audio.tobytes(), proc
        self.chunk = int(rate * chunk_s) * 2
        self.pause = chunk_s / speed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pos = 0
        while not self._stop.is_set():
            piece = self.pcm[pos:pos + self.chunk]
            pos = (pos + self.chunk) % (len(self.pcm) - len(self.pcm) % 2)
            try:
                self.proc.stdin.write(piece)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return
            time.sleep(self.pause)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_discovery_describes_one_device_with_unique_ids_its_topics_and_availability(tiny_artifacts, runtime_env, tmp_path, daemons, broker, subscriber):
    sub = subscriber(["homeassistant/#", f"{PREFIX}/availability"])
    d = daemons(tmp_path, runtime_env, ["--source", "stdin", "--mqtt", broker.url, "--device-id", DEV, *_artifact_args(tiny_artifacts)], stdin=subprocess.PIPE)
    sub.wait_message(f"{PREFIX}/availability", b"online")
    sub.wait_for(lambda m: sum(t.endswith("/config") for t, _, _ in m) >= 4, what="four discovery payloads")
    configs = {t: json.loads(p) for t, p, _ in sub.messages if t.endswith("/config")}
    assert sorted(configs) == [
        f"homeassistant/number/edge-asc-{DEV}/k/config", f"homeassistant/select/edge-asc-{DEV}/mode/config",
        f"homeassistant/sensor/edge-asc-{DEV}/confidence/config", f"homeassistant/sensor/edge-asc-{DEV}/scene/config",
    ]
    ids = [c["unique_id"] for c in configs.values()]
    assert len(set(ids)) == 4 and all(i.startswith(f"edge-asc-{DEV}-") for i in ids)
    for c in configs.values():
        assert c["availability_topic"] == f"{PREFIX}/availability"
        assert (c["payload_available"], c["payload_not_available"]) == ("online", "offline")
        assert c["device"]["identifiers"] == [f"edge-asc-{DEV}"] and c["device"]["sw_version"]
        assert c["state_topic"].startswith(PREFIX + "/")
    scene = configs[f"homeassistant/sensor/edge-asc-{DEV}/scene/config"]
    assert (scene["state_topic"], scene["json_attributes_topic"]) == (f"{PREFIX}/scene", f"{PREFIX}/attributes") and scene["icon"]
    k = configs[f"homeassistant/number/edge-asc-{DEV}/k/config"]
    assert (k["command_topic"], k["min"], k["max"], k["step"]) == (f"{PREFIX}/k/set", 1, 100, 1)
    mode = configs[f"homeassistant/select/edge-asc-{DEV}/mode/config"]
    assert mode["command_topic"] == f"{PREFIX}/mode/set" and mode["options"] == ["window", "sliding", "adaptive"]

    before = len(sub.messages)  # Home Assistant's birth message: discovery again
    sub.publish("homeassistant/status", "online")
    sub.wait_for(lambda m: sum(t.endswith("/config") for t, _, _ in m[before:]) >= 4, what="discovery after the birth message")
    d.proc.stdin.close()
    assert d.wait() == 0, d.log()


def test_scene_state_and_attributes_equal_the_socket_scene_events(tiny_artifacts, runtime_env, tmp_path, daemons, broker, subscriber):
    sub = subscriber()
    config = _config(tmp_path, "audio:\n  realtime: false\nserver:\n  wait_for_client: true\nmqtt:\n  segments: true\n")
    clip = tiny_artifacts.clips["forest_birds"]
    d = daemons(tmp_path, runtime_env, ["--config", config, "--source", f"file:{clip}", "--mode", "sliding", "--mqtt", broker.url, "--device-id", DEV, *_artifact_args(tiny_artifacts)])
    d.wait_listening()
    sub.wait_message(f"{PREFIX}/availability", b"online")  # connected before the audio starts
    with Client(str(d.socket), timeout=30) as client:
        scenes = [e.to_dict() for e in client if isinstance(e, Scene)]
    assert d.wait() == 0, d.log()
    sub.wait_message(f"{PREFIX}/availability", b"offline")  # a clean stop says so too
    assert len(scenes) >= 10
    attributes = [json.loads(p) for p in sub.on(f"{PREFIX}/attributes")]
    for s in scenes:
        del s["type"], s["v"]
    assert attributes == scenes
    assert [p.decode() for p in sub.on(f"{PREFIX}/scene")] == [s["label"] for s in scenes]
    assert sub.on(f"{PREFIX}/k") == [b"3"] and sub.on(f"{PREFIX}/mode") == [b"sliding"]
    segments = [json.loads(p)["index"] for p in sub.on(f"{PREFIX}/segment")]  # asked for: one message per segment
    assert segments == list(range(scenes[-1]["segment_index"] + 1))


def test_a_killed_daemon_reads_offline_by_its_last_will(tiny_artifacts, runtime_env, tmp_path, daemons, broker, subscriber):
    sub = subscriber([f"{PREFIX}/availability"])
    d = daemons(tmp_path, runtime_env, ["--source", "stdin", "--mqtt", broker.url, "--device-id", DEV, *_artifact_args(tiny_artifacts)], stdin=subprocess.PIPE)
    online = sub.wait_message(f"{PREFIX}/availability", b"online")
    d.proc.send_signal(signal.SIGKILL)
    sub.wait_message(f"{PREFIX}/availability", b"offline", after=online + 1, timeout=15)
    late = Subscriber(broker.port, [f"{PREFIX}/availability"], "late-subscriber")  # retained for whoever comes later
    try:
        late.wait_message(f"{PREFIX}/availability", b"offline")
    finally:
        late.close()


def _socket_scenes(path, out: list, stop: threading.Event) -> None:
    with Client(str(path), timeout=30) as client:
        for event in client:
            out.append((time.monotonic(), event))
            if stop.is_set():
                return


def test_a_restarted_broker_gets_the_state_again_and_the_pipeline_never_stalls(tiny_artifacts, runtime_env, tmp_path, daemons, broker, subscriber):
    config = _config(tmp_path, "status_interval: 0.2\nmqtt:\n  reconnect_min: 1\n  reconnect_max: 1\n")
    d = daemons(tmp_path, runtime_env, ["--config", config, "--source", "stdin", "--k", "1", "--mqtt", broker.url, "--device-id", DEV, *_artifact_args(tiny_artifacts)], stdin=subprocess.PIPE)
    d.wait_listening()
    sub = subscriber()
    sub.wait_message(f"{PREFIX}/availability", b"online")
    events, stop = [], threading.Event()
    reader = threading.Thread(target=_socket_scenes, args=(d.socket, events, stop), daemon=True)
    reader.start()
    feeder = PcmFeeder(d.proc, tiny_artifacts.clips["rain"])
    try:
        sub.wait_message(f"{PREFIX}/scene", b"rain")
        broker.stop()
        down_at = time.monotonic()
        time.sleep(1.5)
        broker.start()
        up_at = time.monotonic()
        after = len(sub.messages)
        sub.wait_message(f"{PREFIX}/availability", b"online", after=after)  # the subscriber and the daemon reconnect
        sub.wait_message(f"{PREFIX}/scene", b"rain", after=after)  # the latest state, republished
        late = Subscriber(broker.port, [f"{PREFIX}/scene"], "late-subscriber")  # the broker keeps nothing: it was republished
        try:
            late.wait_for(lambda m: any(retained for _, _, retained in m), what="a retained scene")
        finally:
            late.close()
    finally:
        feeder.stop()
        stop.set()
    scenes = [(t, e) for t, e in events if isinstance(e, Scene)]
    during = [e for t, e in scenes if down_at < t < up_at]
    assert len(during) >= 5, "the socket got no scenes while the broker was away"
    gaps = np.diff([t for t, _ in scenes])
    assert gaps.max() < 1.0, f"a stall of {gaps.max():.2f} s between two scenes"
    assert np.percentile([e.latency_ms for e in during], 50) < 200
    connected = [(t, e.mqtt_connected) for t, e in events if isinstance(e, Status)]
    assert any(not c for t, c in connected if down_at < t < up_at) and connected[-1][1] is True
    d.proc.stdin.close()
    assert d.wait() == 0, d.log()
    assert "MQTT: connection to" in d.log() and "lost" in d.log()


def test_k_and_mode_commands_are_obeyed_and_bad_payloads_refused_without_harm(tiny_artifacts, runtime_env, tmp_path, daemons, broker, subscriber):
    d = daemons(tmp_path, runtime_env, ["--source", "stdin", "--mqtt", broker.url, "--device-id", DEV, *_artifact_args(tiny_artifacts)], stdin=subprocess.PIPE)
    d.wait_listening()
    sub = subscriber()
    sub.wait_message(f"{PREFIX}/availability", b"online")
    for payload in (b"abc", b"0", b"101", b"5.5", b"\xff\xfe", b'"5"', b"[5]", b""):
        n = len(sub.messages)
        sub.publish(f"{PREFIX}/k/set", payload)
        i = sub.wait_message(f"{PREFIX}/error", after=n)
        error = Error.from_json({"type": "error", **json.loads(sub.messages[i][1])})
        assert error.code == "bad_request" and error.message.startswith(("set.k", "k:", "set: ")), error
    n = len(sub.messages)
    sub.publish(f"{PREFIX}/mode/set", "turbo")
    i = sub.wait_message(f"{PREFIX}/error", after=n)
    assert "window" in json.loads(sub.messages[i][1])["message"]  # names the accepted modes

    sub.publish(f"{PREFIX}/k/set", "5.0")  # Home Assistant's number entity may send a float
    sub.wait_message(f"{PREFIX}/k", b"5")
    sub.publish(f"{PREFIX}/mode/set", "sliding")
    sub.wait_message(f"{PREFIX}/mode", b"sliding")
    with Client(str(d.socket), timeout=30) as client:
        assert (client.hello.k, client.hello.mode) == (5, "sliding")
        feeder = PcmFeeder(d.proc, tiny_artifacts.clips["rain"], speed=20)
        try:
            scene = next(e for e in client if isinstance(e, Scene))  # the daemon still decides, with the new policy
        finally:
            feeder.stop()
    assert (scene.mode, scene.k) == ("sliding", 5)
    d.proc.stdin.close()
    assert d.wait() == 0, d.log()
    assert d.log().count("command on") == 9


def test_three_daemons_on_one_broker_are_seen_by_one_subscriber(tiny_artifacts, runtime_env, tmp_path, daemons, broker):
    """The fleet example of docs/deployment.md, with mosquitto_sub as the subscriber."""
    import shutil

    if shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto_sub is not installed (apt-get install mosquitto-clients)")
    labels = tiny_artifacts.labels
    procs = []
    for i, label in enumerate(labels):
        where = tmp_path / f"d{i}"
        where.mkdir()
        procs.append(daemons(where, runtime_env, ["--no-realtime", "--source", f"file:{tiny_artifacts.clips[label]}", "--mqtt", broker.url, "--device-id", f"robot-{i}", *_artifact_args(tiny_artifacts)]))
    for d in procs:
        assert d.wait() == 0, d.log()
    got = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "edge-asc/+/scene", "-v", "-C", "3", "-W", "10"], capture_output=True, text=True, timeout=20)
    seen = dict(line.split(" ", 1) for line in got.stdout.splitlines())  # the retained scene of each device
    assert seen == {f"edge-asc/robot-{i}/scene": label for i, label in enumerate(labels)}, got


def test_the_password_comes_from_a_private_file_and_never_reaches_the_log(tiny_artifacts, runtime_env, tmp_path, daemons, tmp_path_factory):
    import mosquitto

    if mosquitto.MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    secret = "s3cret-Pa55word"
    b = mosquitto.Broker(tmp_path_factory.mktemp("auth-broker"), users={"edge": secret})
    b.start()
    try:
        for name, password in (("right", secret), ("wrong", secret[::-1])):
            where = tmp_path / name
            where.mkdir()
            pw = where / "mqtt.password"
            pw.write_text(password + "\n")
            pw.chmod(0o600)
            config = _config(where, f"log_level: DEBUG\nmqtt:\n  username: edge\n  password_file: {pw}\n")
            d = daemons(where, runtime_env, ["--config", config, "--source", "stdin", "--mqtt", b.url, "--device-id", DEV, *_artifact_args(tiny_artifacts)], stdin=subprocess.PIPE)
            d.wait_listening()
            deadline = time.monotonic() + 20
            expected = "MQTT: connected" if name == "right" else "MQTT: cannot connect"
            while expected not in d.log():
                assert time.monotonic() < deadline, d.log()
                time.sleep(0.05)
            d.proc.stdin.close()
            assert d.wait() == 0, d.log()
            assert secret not in d.log() and secret[::-1] not in d.log()
        pw.chmod(0o644)  # others could read it: refused before anything starts, without showing it
        check = subprocess.run([*d.proc.args[:3], "run", "--check-config", "--config", config, *_artifact_args(tiny_artifacts), "--mqtt", b.url],
                               env=runtime_env, capture_output=True, text=True, timeout=60)
        assert check.returncode == 2 and "readable by everyone" in check.stderr and secret[::-1] not in check.stderr + check.stdout
    finally:
        b.stop()


def test_mqtts_with_an_unreadable_ca_is_refused_by_check_config(tiny_artifacts, runtime_env, tmp_path):
    import sys

    from conftest import WRAPPER

    config = _config(tmp_path, f"mqtt:\n  url: mqtts://127.0.0.1\n  tls_ca: {tmp_path / 'missing-ca.pem'}\n")
    check = subprocess.run([sys.executable, "-c", WRAPPER, "run", "--check-config", "--config", config, *_artifact_args(tiny_artifacts)],
                           env=runtime_env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 2 and "missing-ca.pem does not exist" in check.stderr, check.stderr
    good = _config(tmp_path, "mqtt:\n  url: mqtt://127.0.0.1\n")
    check = subprocess.run([sys.executable, "-c", WRAPPER, "run", "--check-config", "--config", good, "--metrics", "9108", *_artifact_args(tiny_artifacts)],
                           env=runtime_env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "MQTT mqtt://127.0.0.1:1883 as edge-asc/" in check.stdout and "metrics on 127.0.0.1:9108" in check.stdout, check.stderr


def test_command_payloads_become_set_requests_checked_by_the_protocol():
    from edge_asc.daemon.mqtt import command_request
    from edge_asc.protocol.messages import Set
    from edge_asc.protocol.records import ProtocolError

    assert command_request("k", b" 7\n") == Set(k=7) and command_request("k", b"7.0") == Set(k=7)
    assert command_request("mode", b"adaptive") == Set(mode="adaptive")
    for kind, payload in (("k", b"7.5"), ("k", b"true"), ("k", b"1e9"), ("k", b"-1"), ("k", b"\x80"), ("mode", b""), ("mode", b"Window")):
        with pytest.raises(ProtocolError):
            command_request(kind, payload)
