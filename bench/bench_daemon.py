"""Benchmark: the daemon (``edge-asc run``) live from a paced file, as a separate process, over its Unix socket.

    OMP_NUM_THREADS=1 python bench/bench_daemon.py [--model M.onnx] [--seconds 45] [--items 100000] [--json out.json]

Measured, all on the real daemon process:

* per-segment processing time (features, encoder, search, total): the ``timings_ms`` of every
  ``segment`` event (perf_counter around each stage in the worker: wall time, so it includes any wait for
  a core on a busy machine), median and p99; real-time factor = total processing time / audio time, and
  the daemon's whole CPU time (utime + stime from /proc, all threads) / wall time while audio flows;
* the same stages' CPU time (thread_time around the same calls, in this process, on the same audio,
  model and index): what a segment costs when it does not wait for a core;
* decision latency: from the moment the last sample of a decision's last segment entered the ring
  buffer to the moment a subscriber's recv() returned the ``scene`` line. The daemon stamps each scene
  with ``wall_time`` (when it was built) and ``latency_ms`` (ring entry -> built); the subscriber adds
  its own receive time: latency = recv_time - (wall_time - latency_ms / 1000), one clock (CLOCK_REALTIME)
  on one machine. Decisions are in sliding mode (one per 300 ms segment, k=3);
* cold start: from just before the process is spawned to READY=1 arriving on a NOTIFY_SOCKET this
  script listens on (the daemon sends it once it serves), median of ``--starts`` launches;
* resident memory: the daemon's VmHWM (peak VmRSS) from /proc, with an index of ``--items`` random
  unit vectors built for the model (``SegmentIndex.build`` with the model's metadata, so the manifest
  is the real one). With a file source the daemon never loads PortAudio; a microphone daemon maps
  PortAudio/ALSA too (measured separately: ``sounddevice_import_mb``);
* ``--device-rates 16000,44100,48000``: instead of the above, the live path through real PulseAudio capture
  at a microphone's rates (mixing and resampling included): CPU per segment and memory (bench/daemon_rates.py);
* 50 subscribers, one of which never reads (tiny receive buffer, subscribed to everything): decision
  latency for the 49 readers, against a run with a single reader. The readers share one selector
  loop in this process.

Without ``--model`` (and no default model installed), an encoder of the default size (hidden 64,
D = 129) is trained for one short epoch and exported first (torch is used here, never in the daemon);
its weights do not change what a segment costs. Built artifacts are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = next((p for p in (REPO.parent / "shared" / "data" / "ambient13", Path("/work/shared/data/ambient13")) if p.is_dir()), REPO.parent / "shared" / "data" / "ambient13")
BENCH_RECORDINGS = ("street_traffic/moodist__busy-street.flac", "rain/blanket__rain.flac", "forest_birds/blanket__birds.flac", "cafe_restaurant/moodist__cafe.flac")
TARGETS = {"total_median_ms": 1.0, "decision_latency_p99_ms": 10.0, "cold_start_s": 1.5, "rss_mb": 150.0}
STAGES = ("features", "encoder", "search", "total")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- artifacts --------------------------------------------------------------------------------------


def default_size_model(cache: Path) -> Path:
    """An encoder of the default architecture, trained one short epoch on real audio, exported to ONNX."""
    path = cache / "bench-default-size.onnx"
    if path.exists():
        return path
    import dataclasses

    import torch

    from edge_asc.dsp.audio_io import read_audio
    from edge_asc.training.export import export_onnx
    from edge_asc.training.train import fit_scenes
    from edge_asc.training.config import AugmentConfig, TrainConfig

    torch.set_num_threads(1)
    log("training a default-size encoder for one short epoch (no model given)...")
    audio = [read_audio(DATA / rel, 16000)[: 16000 * 10] for rel in BENCH_RECORDINGS]
    labels = tuple(rel.split("/")[0] for rel in BENCH_RECORDINGS)
    y = np.arange(len(labels))
    config = dataclasses.replace(TrainConfig(), epochs=1, augment=AugmentConfig.off(), threads=1)
    trained = fit_scenes(config, audio, y, y, labels, progress=False)
    return export_onnx(trained, path)


def random_index(model: Path, items: int, cache: Path) -> tuple[Path, float]:
    """An index of ``items`` random unit vectors for ``model`` (cached); returns (dir, build seconds)."""
    from edge_asc.runtime.encoder import Encoder
    from edge_asc.runtime.index import SegmentIndex

    meta = Encoder(model).meta
    out = cache / f"random-{items}-{meta.sha256[:12]}"
    if (out / "manifest.json").exists():
        return out, float("nan")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((items, meta.embedding_size)).astype(np.float32)  # (N, D)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = rng.integers(0, len(meta.labels), items)
    scenes = np.arange(items) // 100  # 100 segments (30 s) per scene
    log(f"building a random {items}-item index (D={meta.embedding_size}, one thread)...")
    t0 = time.perf_counter()
    index = SegmentIndex.build(x, labels, scenes, scenes // 4, meta, threads=1)
    seconds = time.perf_counter() - t0
    index.save(out)
    return out, seconds


def bench_audio(seconds: float, cache: Path) -> Path:
    """``seconds`` of real recordings, one after another, 16 kHz mono FLAC."""
    import soundfile as sf

    from edge_asc.dsp.audio_io import read_audio

    path = cache / f"bench-audio-{int(seconds)}s.flac"
    if not path.exists():
        per = int(16000 * seconds / len(BENCH_RECORDINGS)) + 1
        audio = np.concatenate([read_audio(DATA / rel, 16000)[:per] for rel in BENCH_RECORDINGS])[: int(16000 * seconds)]
        sf.write(str(path), audio, 16000, subtype="PCM_16")
    return path


# --- the daemon process -------------------------------------------------------------------------------


def proc_status(pid: int, key: str) -> float:
    """A /proc/PID/status value in MB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Daemon:
    def __init__(self, workdir: Path, args: list[str], notify: Path | None = None) -> None:
        self.socket = workdir / "edge-asc.sock"
        env = dict(os.environ, OMP_NUM_THREADS="1", XDG_RUNTIME_DIR=str(workdir))
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify)
        self.log = open(workdir / "daemon.log", "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_asc", "run", "--socket", str(self.socket), *args], env=env, stdout=self.log, stderr=self.log)

    def wait_socket(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start (exit {self.proc.poll()}); see {self.log.name}")
            time.sleep(0.005)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self.log.close()
        return rc


def cold_starts(model: Path, index: Path, starts: int, workdir: Path) -> list[float]:
    times = []
    for i in range(starts):
        d = workdir / f"start{i}"
        d.mkdir()
        notify_path = d / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(60)
        t0 = time.monotonic()
        daemon = Daemon(d, ["--model", str(model), "--index", str(index), "--source", "stdin"], notify=notify_path)
        while not notify.recv(256).startswith(b"READY=1"):
            pass
        times.append(time.monotonic() - t0)
        daemon.stop()
        notify.close()
    return times


def live_run(model: Path, index: Path, audio: Path, readers: int, stuck: bool, workdir: Path) -> dict:
    """One paced run; returns per-segment timings, decision latencies per reader, memory, CPU."""
    workdir.mkdir()
    config = workdir / "config.yaml"
    config.write_text("server:\n  wait_for_client: true\nstatus_interval: 1.0\n")
    daemon = Daemon(workdir, ["--config", str(config), "--model", str(model), "--index", str(index), "--source", f"file:{audio}", "--realtime", "--k", "3", "--mode", "sliding"])
    daemon.wait_socket()
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(readers):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(daemon.socket))
        s.sendall(json.dumps({"type": "subscribe", "events": ["scene", "segment", "status"] if i == 0 else ["scene"]}).encode() + b"\n")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, {"reader": i, "buf": b""})
        socks.append(s)
    silent = None
    if stuck:  # subscribes to everything, never reads
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.connect(str(daemon.socket))
        silent.sendall(b'{"type": "subscribe", "events": ["scene", "segment", "status"]}\n')
    latencies = [[] for _ in range(readers)]  # ms, per reader, in decision order
    timings = []  # (features, encoder, search, total) ms per segment
    drops = 0
    hwm = rss = 0.0
    cpu_samples = []  # (monotonic, daemon CPU seconds) while audio flows
    open_socks = readers
    next_sample = 0.0
    while open_socks:
        now = time.monotonic()
        if now >= next_sample and daemon.proc.poll() is None:
            try:
                hwm = max(hwm, proc_status(daemon.proc.pid, "VmHWM"))
                rss = max(rss, proc_status(daemon.proc.pid, "VmRSS"))
                if timings:  # audio is flowing (start-up and loading are not counted)
                    cpu_samples.append((now, proc_cpu_seconds(daemon.proc.pid)))
            except (FileNotFoundError, ProcessLookupError):
                pass  # it just exited
            next_sample = now + 0.5
        for key, _ in sel.select(timeout=0.5):
            s, state = key.fileobj, key.data
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            received = time.time()
            if not chunk:
                sel.unregister(s)
                s.close()
                open_socks -= 1
                continue
            lines = (state["buf"] + chunk).split(b"\n")
            state["buf"] = lines.pop()
            for line in lines:
                event = json.loads(line)
                kind = event["type"]
                if kind == "scene":
                    latencies[state["reader"]].append((received - (event["wall_time"] - event["latency_ms"] / 1000.0)) * 1000.0)
                elif kind == "segment":
                    timings.append(tuple(event["timings_ms"][s_] for s_ in STAGES))
                elif kind == "status":
                    drops = event["drops"]
                elif kind == "error":
                    raise RuntimeError(f"reader {state['reader']} got an error: {event}")
    rc = daemon.stop()
    if silent is not None:
        silent.close()
    if rc != 0:
        raise RuntimeError(f"the daemon exited with {rc}; see {workdir / 'daemon.log'}")
    (t0, c0), (t1, c1) = cpu_samples[0], cpu_samples[-1]
    return {"timings": np.array(timings), "latencies": latencies, "hwm_mb": hwm, "rss_mb": rss, "cpu_share": (c1 - c0) / (t1 - t0), "drops": drops}


def stage_cpu_times(model: Path, index: Path, audio: Path) -> np.ndarray:
    """(n_segments, 4) thread CPU ms of features, encoder, search, total: the pipeline's calls, in this process."""
    from edge_asc.dsp.audio_io import read_audio
    from edge_asc.dsp.features import FeatureExtractor, Segmenter
    from edge_asc.runtime.pipeline import load_artifacts

    encoder, idx = load_artifacts(model, index)
    fc = encoder.meta.feature_config
    extractor, segmenter = FeatureExtractor(fc), Segmenter(fc)
    batch = np.zeros((1, fc.frames_per_segment, fc.n_features), dtype=np.float32)
    out = []
    for _, x in segmenter.push(read_audio(audio, fc.sample_rate)):
        t0 = time.thread_time_ns()
        batch[0] = extractor.segment_features(x)
        t1 = time.thread_time_ns()
        emb = encoder.embed(batch)
        t2 = time.thread_time_ns()
        idx.query(emb, 1)
        t3 = time.thread_time_ns()
        out.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
    return np.array(out, dtype=np.float64) / 1e6


def sounddevice_import_mb() -> float:
    """What importing sounddevice (PortAudio, ALSA and its plugins) adds to a process's RSS."""
    code = (
        "import numpy, onnxruntime, hnswlib\n"
        "def rss():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
        "a = rss(); import sounddevice; print((rss() - a) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return float(out.stdout.strip()) if out.returncode == 0 else float("nan")


# --- report -----------------------------------------------------------------------------------------


def pct(x, q) -> float:
    return float(np.percentile(np.asarray(x, dtype=np.float64), q)) if len(x) else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="ONNX encoder (default: the installed default model, else a default-size one trained here)")
    parser.add_argument("--items", type=int, default=100_000, help="items in the random index")
    parser.add_argument("--index", type=Path, help="use this index (e.g. the shipped one) instead of a random one of --items items")
    parser.add_argument("--seconds", type=float, default=45.0, help="audio per live run (paced in real time)")
    parser.add_argument("--crowd-seconds", type=float, default=120.0, help="audio for the crowded run (long enough for the stuck subscriber's socket buffers to fill and its queue to overflow)")
    parser.add_argument("--starts", type=int, default=5, help="cold starts to time")
    parser.add_argument("--subscribers", type=int, default=50, help="subscribers in the crowded run (one of them never reads)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "edge-asc-bench-daemon", help="where built artifacts are kept")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--device-rates", metavar="HZ,...", help="instead: the live path captured through PulseAudio at these device rates (e.g. 16000,44100,48000)")
    parser.add_argument("--tree", type=Path, help="with --device-rates: run this checkout's daemon (PYTHONPATH) to compare")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    from edge_asc.paths import default_model_path

    model = args.model or (default_model_path() if default_model_path().is_file() else default_size_model(args.cache))
    if args.index is not None:
        from edge_asc.runtime.index import SegmentIndex

        index, build_s = args.index, 0.0
        args.items = len(SegmentIndex.load(args.index))
    else:
        index, build_s = random_index(model, args.items, args.cache)
    audio = bench_audio(args.seconds, args.cache)
    work = Path(tempfile.mkdtemp(prefix="edge-asc-bd-"))
    if args.device_rates:  # only the live path at device rates, through PulseAudio (bench/daemon_rates.py)
        import daemon_rates

        daemon_rates.run(Daemon, proc_status, proc_cpu_seconds, model, index, audio, [int(r) for r in args.device_rates.split(",")], work, args.tree)
        return 0
    crowd_audio = bench_audio(args.crowd_seconds, args.cache)
    log(f"model {model}, index {index} ({args.items} items), audio {audio} ({args.seconds:.0f} s)")

    log("cold starts...")
    starts = cold_starts(model, index, args.starts, work)
    log("live run, one subscriber...")
    solo = live_run(model, index, audio, 1, False, work / "solo")
    log(f"live run, {args.subscribers} subscribers, one never reading...")
    crowd = live_run(model, index, crowd_audio, args.subscribers - 1, True, work / "crowd")
    sd_mb = sounddevice_import_mb()
    cpu_t = stage_cpu_times(model, index, audio)  # (n, 4) ms

    t = solo["timings"]  # (n_segments, 4) ms
    seg_s = 0.3
    solo_lat = solo["latencies"][0]
    crowd_lat = [x for r in crowd["latencies"] for x in r]
    tenth = max(1, len(crowd["latencies"][0]) // 10)
    crowd_first = [x for r in crowd["latencies"] for x in r[:tenth]]
    crowd_last = [x for r in crowd["latencies"] for x in r[-tenth:]]
    figures = {
        "model": str(model),
        "index_items": args.items,
        "index_build_s": build_s,
        "audio_s": args.seconds,
        "segments": int(t.shape[0]),
        "per_segment_ms": {s: {"median": float(np.median(t[:, i])), "p99": pct(t[:, i], 99)} for i, s in enumerate(STAGES)},
        "per_segment_cpu_ms": {s: {"median": float(np.median(cpu_t[:, i])), "p99": pct(cpu_t[:, i], 99)} for i, s in enumerate(STAGES)},
        "load_average": os.getloadavg(),
        "real_time_factor_pipeline": float(t[:, 3].sum() / 1000.0 / (t.shape[0] * seg_s)),
        "real_time_factor_process_cpu": solo["cpu_share"],
        "decision_latency_ms": {"n": len(solo_lat), "p50": pct(solo_lat, 50), "p99": pct(solo_lat, 99), "max": max(solo_lat)},
        "cold_start_s": {"median": float(np.median(starts)), "max": max(starts), "all": starts},
        "rss_mb": {"peak_vmhwm": solo["hwm_mb"], "peak_vmrss": solo["rss_mb"], "sounddevice_import_mb": sd_mb},
        "crowd": {
            "audio_s": args.crowd_seconds,
            "readers": args.subscribers - 1,
            "stuck": 1,
            "n": len(crowd_lat),
            "p50": pct(crowd_lat, 50),
            "p99": pct(crowd_lat, 99),
            "first_tenth_p99": pct(crowd_first, 99),
            "last_tenth_p99": pct(crowd_last, 99),
            "drops_for_stuck": crowd["drops"],
            "per_segment_total_median_ms": float(np.median(crowd["timings"][:, 3])),
        },
    }
    ps = figures["per_segment_ms"]
    rows = [
        ("per-segment features (median / p99)", f"{ps['features']['median']:.3f} / {ps['features']['p99']:.3f} ms", ""),
        ("per-segment encoder (median / p99)", f"{ps['encoder']['median']:.3f} / {ps['encoder']['p99']:.3f} ms", ""),
        ("per-segment search (median / p99)", f"{ps['search']['median']:.3f} / {ps['search']['p99']:.3f} ms", ""),
        ("per-segment total (median / p99)", f"{ps['total']['median']:.3f} / {ps['total']['p99']:.3f} ms", f"< {TARGETS['total_median_ms']} ms median"),
        ("per-segment CPU time: features / encoder / search", " / ".join(f"{figures['per_segment_cpu_ms'][s]['median']:.3f}" for s in STAGES[:3]) + " ms", "medians"),
        ("per-segment CPU time total (median / p99)", f"{figures['per_segment_cpu_ms']['total']['median']:.3f} / {figures['per_segment_cpu_ms']['total']['p99']:.3f} ms", f"< {TARGETS['total_median_ms']} ms median"),
        ("real-time factor (pipeline / whole process CPU)", f"{figures['real_time_factor_pipeline']:.4f} / {figures['real_time_factor_process_cpu']:.4f}", ""),
        ("decision latency, 1 subscriber (p50 / p99)", f"{pct(solo_lat, 50):.2f} / {pct(solo_lat, 99):.2f} ms", f"p99 < {TARGETS['decision_latency_p99_ms']} ms"),
        (f"decision latency, {args.subscribers - 1} readers + 1 stuck (p50 / p99)", f"{figures['crowd']['p50']:.2f} / {figures['crowd']['p99']:.2f} ms", ""),
        ("  first / last tenth of that run (p99)", f"{figures['crowd']['first_tenth_p99']:.2f} / {figures['crowd']['last_tenth_p99']:.2f} ms", "no growth"),
        ("  events dropped for the stuck subscriber", f"{crowd['drops']}", ""),
        ("cold start to READY=1 (median / max)", f"{np.median(starts):.2f} / {max(starts):.2f} s", f"< {TARGETS['cold_start_s']} s"),
        (f"resident memory, {args.items} items (peak VmHWM)", f"{solo['hwm_mb']:.1f} MB", f"< {TARGETS['rss_mb']:.0f} MB"),
        ("  + PortAudio/ALSA when a microphone is used", f"{sd_mb:.1f} MB", ""),
    ]
    width = max(len(r[0]) for r in rows)
    cores = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in figures["load_average"])
    print(f"edge-asc daemon bench: {t.shape[0]} segments of live audio paced from a file, index of {args.items} items")
    print(f"machine: {cores} cores, load average {load} at the end (wall-clock figures include waits for a core)")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>22}  {target}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
