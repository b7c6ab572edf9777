"""Benchmark: what MQTT (paho-mqtt) and Prometheus metrics (prometheus-client) cost the daemon.

    OMP_NUM_THREADS=1 python bench/bench_mqtt.py [--model M.onnx --index DIR] [--seconds 60] [--runs 2] [--json out.json]

Needs mosquitto (apt-get install mosquitto); a broker is started on a free loopback port. Measured:

* import: the time and resident memory that ``import paho.mqtt.client`` and ``import prometheus_client``
  add to a process that has already imported the daemon (median of 5 fresh interpreters);
* the daemon with MQTT and metrics off, then on (MQTT to the local broker, metrics served and scraped
  once at the end), alternating, ``--runs`` times each: cold start (spawn to READY=1 on a NOTIFY_SOCKET
  this script listens on), VmRSS after the run, and the daemon's CPU time (utime + stime, all threads)
  per segment while ``--seconds`` of audio flow through stdin at ``--speed`` times real time, k=1 (one
  scene per 300 ms segment: every segment is a decision published on MQTT, the worst case);
* decision latency seen by a subscriber: receive time minus the scene's ``wall_time`` (when the daemon
  built it), one clock on one machine, on the socket and on MQTT (``PREFIX/attributes`` through
  mosquitto on loopback), p50 and p99.

The audio is generated (tests/audio_gen.py, 16 kHz); what a segment costs does not depend on what it holds.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import audio_gen  # noqa: E402
import mosquitto  # noqa: E402

DEVICE = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def import_cost(module: str, repeats: int = 5) -> tuple[float, float]:
    """(ms, MiB) that importing ``module`` adds after the daemon's own imports; medians."""
    code = (
        "import time, edge_asc.daemon.daemon, edge_asc.commands.run\n"
        "def rss(): return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])\n"
        f"r = rss(); t = time.perf_counter(); import {module}; dt = time.perf_counter() - t\n"
        "print(dt * 1000, (rss() - r) / 1024)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = [tuple(map(float, subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split())) for _ in range(repeats)]
    return statistics.median(o[0] for o in out), statistics.median(o[1] for o in out)


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split("VmRSS:")[1].split()[0]) / 1024


class MqttScenes:
    """Arrival time and wall_time of every attributes message."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho

        self.got: list[tuple[float, float]] = []
        self.online = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-subscriber")
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe([(f"edge-asc/{DEVICE}/attributes", 1), (f"edge-asc/{DEVICE}/availability", 1)])
        c.on_message = self._on_message
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time()
        if msg.topic.endswith("/availability"):
            if msg.payload == b"online":
                self.online.set()
        elif not msg.retain:
            self.got.append((now, json.loads(msg.payload)["wall_time"]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def one_run(args, on: bool, pcm: bytes, broker, tmp: Path) -> dict:
    from edge_asc.protocol.client import Client
    from edge_asc.protocol.messages import Scene

    sock_path, notify_path = tmp / f"d-{on}.sock", tmp / f"n-{on}.sock"
    notify_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    metrics_port = mosquitto.free_port()
    cmd = [sys.executable, "-m", "edge_asc", "run", "--source", "stdin", "--rate", str(audio_gen.SAMPLE_RATE), "--k", "1",
           "--model", str(args.model), "--index", str(args.index), "--socket", str(sock_path), "--device-id", DEVICE]
    if on:
        cmd += ["--mqtt", broker.url, "--metrics", f"127.0.0.1:{metrics_port}"]
    env = dict(os.environ, PYTHONPATH=str(REPO), NOTIFY_SOCKET=str(notify_path), OMP_NUM_THREADS="1")
    subscriber = MqttScenes(broker.port) if on else None
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    while b"READY=1" not in notify.recv(4096):
        pass
    cold = time.monotonic() - started
    notify.close()
    if subscriber is not None and not subscriber.online.wait(10):
        raise SystemExit("the daemon did not come online on MQTT")
    socket_got: list[tuple[float, float]] = []
    n_segments = len(pcm) // 2 // int(0.3 * audio_gen.SAMPLE_RATE)
    chunk = int(0.1 * audio_gen.SAMPLE_RATE) * 2
    with Client(str(sock_path), timeout=60) as client:
        cpu0 = proc_cpu_s(proc.pid)

        def feed():
            for i in range(0, len(pcm), chunk):
                proc.stdin.write(pcm[i:i + chunk])
                proc.stdin.flush()
                time.sleep(0.1 / args.speed)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        fed_at = time.monotonic()
        for event in client:
            if isinstance(event, Scene):
                socket_got.append((time.time(), event.wall_time))
                if len(socket_got) >= n_segments - 1:
                    break
        feeder.join()
        time.sleep(0.5)
        cpu1, busy_s = proc_cpu_s(proc.pid), time.monotonic() - fed_at
        rss = proc_rss_mb(proc.pid)
    scrape_ms = None
    if on:
        t = time.perf_counter()
        from urllib.request import urlopen

        body = urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
        scrape_ms = (time.perf_counter() - t) * 1000
        assert b"edge_asc_segments_total" in body
    proc.stdin.close()
    proc.wait(30)
    out = {
        "on": on, "cold_start_s": cold, "rss_mb": rss, "segments": len(socket_got),
        "cpu_ms_per_segment": (cpu1 - cpu0) * 1000 / max(1, len(socket_got)), "cpu_share": (cpu1 - cpu0) / busy_s,
        "socket_latency_ms": [(a - w) * 1000 for a, w in socket_got],
    }
    if subscriber is not None:
        subscriber.close()
        out["mqtt_latency_ms"] = [(a - w) * 1000 for a, w in subscriber.got]
        out["mqtt_scenes"] = len(subscriber.got)
        out["scrape_ms"] = scrape_ms
    return out


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "edge-asc-amb13.onnx")
    ap.add_argument("--index", type=Path, default=REPO / "index" / "edge-asc-amb13")
    ap.add_argument("--seconds", type=float, default=60.0, help="audio per run")
    ap.add_argument("--speed", type=float, default=4.0, help="times real time the audio is fed")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if mosquitto.MOSQUITTO is None:
        raise SystemExit("mosquitto is not installed: apt-get install mosquitto")

    results: dict = {"import": {}}
    for module in ("paho.mqtt.client", "prometheus_client"):
        ms, mib = import_cost(module)
        results["import"][module] = {"ms": ms, "rss_mib": mib}
        log(f"import {module}: +{ms:.1f} ms, +{mib:.1f} MiB RSS (after the daemon's imports; median of 5)")

    clip = audio_gen.clip("street_traffic")
    reps = int(np.ceil(args.seconds * audio_gen.SAMPLE_RATE / len(clip)))
    audio = np.tile(clip, reps)[: int(args.seconds * audio_gen.SAMPLE_RATE)]
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        broker = mosquitto.Broker(Path(tmp))
        broker.start()
        try:
            for i in range(args.runs):
                for on in (False, True):
                    r = one_run(args, on, pcm, broker, Path(tmp))
                    runs.append(r)
                    log(f"run {i + 1} {'on ' if on else 'off'}: cold start {r['cold_start_s']:.2f} s, RSS {r['rss_mb']:.1f} MB, "
                        f"CPU {r['cpu_ms_per_segment']:.2f} ms/segment ({r['segments']} segments)")
        finally:
            broker.stop()

    summary = {}
    for on in (False, True):
        rs = [r for r in runs if r["on"] == on]
        s = {key: statistics.median(r[key] for r in rs) for key in ("cold_start_s", "rss_mb", "cpu_ms_per_segment", "cpu_share")}
        lat = [x for r in rs for x in r["socket_latency_ms"]]
        s["socket_latency_p50_ms"], s["socket_latency_p99_ms"] = pct(lat, 50), pct(lat, 99)
        if on:
            lat = [x for r in rs for x in r["mqtt_latency_ms"]]
            s["mqtt_latency_p50_ms"], s["mqtt_latency_p99_ms"] = pct(lat, 50), pct(lat, 99)
            s["mqtt_scenes_per_socket_scene"] = sum(r["mqtt_scenes"] for r in rs) / sum(r["segments"] for r in rs)
            s["scrape_ms"] = statistics.median(r["scrape_ms"] for r in rs)
        summary["on" if on else "off"] = s
    results["summary"] = summary
    off, on = summary["off"], summary["on"]
    print(f"model {args.model.name}, {args.seconds:g} s of audio per run at {args.speed:g}x real time, k=1, {args.runs} runs each")
    for module, v in results["import"].items():
        print(f"import {module:<18} +{v['ms']:6.1f} ms  +{v['rss_mib']:5.1f} MiB")
    print(f"{'':28}{'off':>10}{'on':>10}{'added':>10}")
    for key, unit in (("cold_start_s", "s"), ("rss_mb", "MB"), ("cpu_ms_per_segment", "ms"), ("cpu_share", "")):
        print(f"{key + (' [' + unit + ']' if unit else ''):28}{off[key]:10.3f}{on[key]:10.3f}{on[key] - off[key]:+10.3f}")
    print(f"decision latency socket (off) p50 {off['socket_latency_p50_ms']:.2f} ms, p99 {off['socket_latency_p99_ms']:.2f} ms")
    print(f"decision latency socket (on)  p50 {on['socket_latency_p50_ms']:.2f} ms, p99 {on['socket_latency_p99_ms']:.2f} ms")
    print(f"decision latency MQTT  (on)  p50 {on['mqtt_latency_p50_ms']:.2f} ms, p99 {on['mqtt_latency_p99_ms']:.2f} ms "
          f"(scenes received on MQTT per socket scene: {on['mqtt_scenes_per_socket_scene']:.3f})")
    print(f"one metrics scrape: {on['scrape_ms']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
