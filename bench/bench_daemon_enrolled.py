"""Benchmark: what 10 enrolled places cost the daemon per segment, and in memory (issue 10's Measure section).

    OMP_NUM_THREADS=1 python bench/bench_daemon_enrolled.py [--seconds 30] [--json bench/results/bench_daemon_enrolled.json]

The real daemon (``edge-asc run``, the shipped model and index) live from a paced file of real recordings
(bench_daemon.bench_audio), three runs: no enrolment; 10 places enrolled (the first 20 s of 10 ambient13
recordings, ``runtime.enrol.enrol`` as ``edge-asc enroll`` does; default mode: base index + overlay); the
same 10 places with ``--enrolled-only`` (the ratio test: overlay + one search of the base index). Per run:
the ``timings_ms`` of every ``segment`` event (features, encoder, search, total; wall time inside the
worker, so it includes waits for a core on a busy machine), median and p99, and the daemon's peak
resident memory (VmHWM). Also the overlay's size in memory and on disk, and the time to enrol 20 s.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon  # noqa: E402
from bench_daemon import STAGES, Daemon, bench_audio, proc_status  # noqa: E402

from edge_asc.dsp.audio_io import read_audio  # noqa: E402
from edge_asc.runtime.encoder import Encoder  # noqa: E402
from edge_asc.runtime.enrol import enrol  # noqa: E402
from edge_asc.runtime.enrolled import EnrolledSet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLACES = 10
ENROL_S = 20


def enrol_places(model: Path, store: Path, data: Path) -> tuple[list[float], EnrolledSet]:
    """The first ENROL_S s of PLACES recordings (one per class where it can), each enrolled as its own place."""
    encoder = Encoder(model)
    rate = encoder.meta.feature_config.sample_rate
    files = sorted(p for p in data.rglob("*.flac"))
    picked, seen = [], set()
    for p in files:  # one per class folder first
        if p.parent.name not in seen:
            picked.append(p)
            seen.add(p.parent.name)
    picked = (picked + [p for p in files if p not in picked])[:PLACES]
    times = []
    for i, p in enumerate(picked):
        audio = read_audio(p, rate)[: ENROL_S * rate]
        t0 = time.perf_counter()
        enrol(store, encoder, f"place{i}", [(p.name, audio)])
        times.append(time.perf_counter() - t0)
    return times, EnrolledSet.load(store, encoder.meta)


def run(model: Path, index: Path, audio: Path, workdir: Path, extra: list[str]) -> dict:
    workdir.mkdir()
    config = workdir / "config.yaml"
    config.write_text("server:\n  wait_for_client: true\n")
    daemon = Daemon(workdir, ["--config", str(config), "--model", str(model), "--index", str(index), "--source", f"file:{audio}", "--realtime", *extra])
    daemon.wait_socket()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(daemon.socket))
    s.sendall(b'{"type": "subscribe", "events": ["segment"]}\n')
    timings, hwm = [], 0.0
    with s, s.makefile("rb") as reader:
        for line in reader:
            event = json.loads(line)
            if event["type"] == "segment":
                timings.append([event["timings_ms"][k] for k in STAGES])
                if len(timings) % 20 == 0:
                    hwm = max(hwm, proc_status(daemon.proc.pid, "VmHWM"))
    rc = daemon.stop()
    if rc != 0 or not timings:
        raise RuntimeError(f"the daemon exited with {rc} after {len(timings)} segments; see {workdir / 'daemon.log'}")
    t = np.array(timings)
    return {"segments": len(t), "vm_hwm_mb": hwm,
            **{f"{k}_ms": {"median": float(np.median(t[:, i])), "p99": float(np.percentile(t[:, i], 99))} for i, k in enumerate(STAGES)}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "edge-asc-amb13.onnx")
    p.add_argument("--index", type=Path, default=REPO / "index" / "edge-asc-amb13")
    p.add_argument("--data", type=Path, default=bench_daemon.DATA, help="ambient13 (the places and the audio played)")
    p.add_argument("--seconds", type=float, default=30.0, help="audio per run (paced in real time)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    bench_daemon.DATA = args.data  # bench_audio reads its recordings there
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio = bench_audio(args.seconds, tmp)
        store = tmp / "enrolled"
        times, overlay = enrol_places(args.model, store, args.data)
        disk = sum(f.stat().st_size for f in store.iterdir() if f.is_file())
        res = {"places": PLACES, "items": len(overlay), "overlay_memory_bytes": overlay.nbytes, "overlay_disk_bytes": disk,
               "enrol_20s_s": {"median": float(np.median(times)), "max": float(max(times))}, "runs": {}}
        for name, extra in (("no enrolment", []), (f"{PLACES} places", ["--enrolled", str(store)]),
                            (f"{PLACES} places, --enrolled-only", ["--enrolled", str(store), "--enrolled-only"])):
            res["runs"][name] = run(args.model, args.index, audio, tmp / name.replace(" ", "_").replace(",", ""), extra)
    print(f"{PLACES} places of {ENROL_S} s: {res['items']} items, overlay {res['overlay_memory_bytes'] / 1024:.0f} KiB in memory, "
          f"{res['overlay_disk_bytes'] / 1024:.0f} KiB on disk; enrolling {ENROL_S} s: {res['enrol_20s_s']['median']:.3f} s median")
    for name, r in res["runs"].items():
        stages = "  ".join(f"{k} {r[f'{k}_ms']['median']:.3f}/{r[f'{k}_ms']['p99']:.3f}" for k in STAGES)
        print(f"  {name:<32} {r['segments']} segments; ms median/p99: {stages}; VmHWM {r['vm_hwm_mb']:.1f} MB")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
