"""Prometheus metrics end to end: the daemon as a subprocess, scraped over HTTP, parsed by prometheus-client."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest
import soundfile as sf

from edge_asc.protocol.client import Client
from edge_asc.protocol.messages import Scene, Status

from mosquitto import free_port

parser = pytest.importorskip("prometheus_client.parser")


def _scrape(port: int) -> dict:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {f.name: f for f in parser.text_string_to_metric_families(body)}


def _value(families: dict, name: str, sample: str | None = None, **labels) -> float:
    family = families[name]
    found = [s.value for s in family.samples if s.name == (sample or name) and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, family.samples)
    return found[0]


def test_the_metrics_endpoint_counts_what_the_socket_saw_while_the_broker_is_unreachable(tiny_artifacts, runtime_env, tmp_path, daemons):
    port, nobody = free_port(), free_port()  # no broker listens on ``nobody``: MQTT retries, the rest runs
    config = tmp_path / "config.yaml"
    config.write_text("status_interval: 0.2\n")
    d = daemons(tmp_path, runtime_env, [
        "--config", str(config), "--source", "stdin", "--k", "1", "--metrics", f"127.0.0.1:{port}", "--mqtt", f"mqtt://127.0.0.1:{nobody}",
        "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index),
    ], stdin=subprocess.PIPE)
    d.wait_listening()
    audio, _ = sf.read(str(tiny_artifacts.clips["street_traffic"]), dtype="int16")
    scenes, statuses = [], []
    with Client(str(d.socket), timeout=30) as client:
        d.proc.stdin.write(audio.tobytes())
        d.proc.stdin.flush()
        deadline = time.monotonic() + 30
        for event in client:
            assert time.monotonic() < deadline, "the segments were not all processed"
            if isinstance(event, Scene):
                scenes.append(event.label)
            elif isinstance(event, Status):
                statuses.append(event)
                if len(statuses) >= 2 and statuses[-1].segments == statuses[-2].segments == len(scenes) > 0:
                    break
        families = _scrape(port)
    assert len(scenes) >= 15 and statuses[-1].mqtt_connected is False
    assert _value(families, "edge_asc_segments", "edge_asc_segments_total") == len(scenes)
    for label, n in Counter(scenes).items():
        assert _value(families, "edge_asc_decisions", "edge_asc_decisions_total", label=label) == n
    for stage in ("features", "encoder", "search", "total"):
        assert _value(families, "edge_asc_stage_seconds", "edge_asc_stage_seconds_count", stage=stage) == len(scenes)
        assert _value(families, "edge_asc_stage_seconds", "edge_asc_stage_seconds_bucket", stage=stage, le="+Inf") == len(scenes)
    assert _value(families, "edge_asc_source_up") == 1 and _value(families, "edge_asc_mqtt_connected") == 0
    assert _value(families, "edge_asc_mqtt_dropped", "edge_asc_mqtt_dropped_total") == len(scenes)  # no broker: none published
    assert _value(families, "edge_asc_subscribers") == 1 and _value(families, "edge_asc_enrolled_items") == 0
    assert _value(families, "edge_asc_k") == 1 and _value(families, "edge_asc_overflows", "edge_asc_overflows_total") == 0
    [client] = families["edge_asc_client_dropped_events"].samples  # the one connected client, which lost nothing
    assert (client.labels["peer"], client.value) == ("unix", 0)
    assert _value(families, "process_resident_memory_bytes") > 10e6
    d.proc.stdin.close()
    assert d.wait() == 0, d.log()
    assert "MQTT: cannot connect to mqtt://127.0.0.1" in d.log()


def test_neither_paho_nor_prometheus_client_is_imported_when_both_are_off(tiny_artifacts):
    code = (
        "import sys; from edge_asc.daemon.config import DaemonConfig; from edge_asc.daemon.outlets import Outlets; "
        "from edge_asc.daemon.metrics import Probes; o = Outlets(DaemonConfig(), 'v', None, Probes(None, None, None, None)); "
        "print(o.mqtt, o.metrics, o.mqtt_connected, sorted(m for m in sys.modules if m.startswith(('paho', 'prometheus_client'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "None None None []", out.stderr
