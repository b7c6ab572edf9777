"""Hostile input and hostile neighbours (issue 11): the figures of its closing note, measured on the real daemon.

Each part runs ``edge-asc run`` (this tree) as a subprocess with the shipped model and index (or the
test fixture's with --tiny):

* ``memory``: peak RSS (ru_maxrss of the child) of ``edge-asc run --check-config`` on a normal config, a
  billion-laughs YAML, a WAV header claiming 10 MHz and 2^31-1 Hz (``classify``), stdin at --rate 383999;
* ``flood``: scene delivery latency (client receive time - the scene's wall_time) of 3 good clients, and
  the daemon's own processing latency (``latency_ms``), without and with one local client flooding ``ping``
  or no-op ``set`` as fast as it can; the flooder's rate_limited count; journal lines the flood caused;
* ``frozen``: a private PulseAudio stopped with SIGSTOP for ``--frozen-s``: time to ``source_lost``,
  longest gap between WATCHDOG=1 (WATCHDOG_USEC 10 s like the unit: due every 5 s, so the gap is measured
  against that), time to ``source_back`` after SIGCONT;
* ``shutdown``: SIGTERM 1 s after start with a fast (``--no-realtime``) 10-minute file source, ``--runs`` times:
  exit codes and times; the same with a frozen PulseAudio;
* ``fds``: 1,100 TCP connections against the default 1024-descriptor limit: stderr lines and bytes, whether a
  good client still gets its hello (the unit's LimitNOFILE argument), descriptors in use with 64 clients;
* ``security``: ``systemd-analyze security --offline=true`` of systemd/edge-asc.service, if available.

    nice -n 10 python bench/bench_hostile.py [--parts memory,flood,frozen,shutdown,fds,security] [--json out.json] [--tree BASELINE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "edge-asc-amb13.onnx"
INDEX = REPO / "index" / "edge-asc-amb13"
CLI = [sys.executable, "-m", "edge_asc"]
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
ENV.pop("NOTIFY_SOCKET", None)


def artifacts(tiny: bool) -> list[str]:
    if tiny or not MODEL.exists():
        return ["--model", str(REPO / "tests/fixtures/tiny/encoder.onnx"), "--index", str(REPO / "tests/fixtures/tiny/index")]
    return ["--model", str(MODEL), "--index", str(INDEX)]


def peak_rss_mb(cmd: list[str], env=ENV, stdin=subprocess.DEVNULL, timeout: float = 300) -> tuple[float, int, str]:
    """(peak RSS MB, exit code, last stderr line) of one command."""
    proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in err.splitlines() if line.strip()]
    return usage.ru_maxrss / 1024, proc.returncode, (lines[-1][:160] if lines else "")


def hostile_wav(path: Path, rate: int) -> Path:
    data = b"\0\0" * 16000
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2 & 0xFFFFFFFF, 2, 16)
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)
    return path


def part_memory(tmp: Path, art: list[str]) -> dict:
    bomb = tmp / "bomb.yaml"
    bomb.write_text("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")) + "source: [*i, *i]\n")
    normal = tmp / "normal.yaml"
    normal.write_text("decision:\n  k: 5\n")
    cases = {
        "check-config, normal config": [*CLI, "run", "--check-config", "--config", str(normal), *art, "--source", "stdin"],
        "check-config, billion-laughs YAML": [*CLI, "run", "--check-config", "--config", str(bomb), *art],
        "classify, WAV header 10 MHz": [*CLI, "classify", str(hostile_wav(tmp / "10mhz.wav", 10_000_000)), *art],
        "classify, WAV header 2^31-1 Hz": [*CLI, "classify", str(hostile_wav(tmp / "2g.wav", 2**31 - 1)), *art],
        "run, stdin --rate 383999": [*CLI, "run", "--source", "stdin", "--rate", "383999", "--socket", str(tmp / "m.sock"), *art],
    }
    out = {}
    for name, cmd in cases.items():
        mb, rc, line = peak_rss_mb(cmd)
        out[name] = {"peak_rss_mb": round(mb, 1), "exit": rc, "stderr": line}
        print(f"  {name:38s} peak {mb:7.1f} MB  exit {rc}  {line}", flush=True)
    return out


# --- the daemon with clients ------------------------------------------------------------------------


def long_file(tmp: Path, seconds: int = 600) -> Path:
    path = tmp / "long.flac"
    if not path.exists():
        rng = np.random.default_rng(0)
        t = np.arange(16000 * 10) / 16000
        ten = (0.05 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        sf.write(str(path), np.tile(ten, seconds // 10), 16000, subtype="PCM_16")
    return path


def start_daemon(tmp: Path, args: list[str], env=ENV, name: str = "d") -> tuple[subprocess.Popen, Path, Path]:
    sock, log = tmp / f"{name}.sock", tmp / f"{name}.log"
    proc = subprocess.Popen([*CLI, "run", "--socket", str(sock), *args], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"daemon did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, sock, log


def good_client(sock_path: Path, seconds: float, out: list, lat_ms: list) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock_path))
    s.settimeout(2)
    f = Lines(s)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            line = f.readline()
        except TimeoutError:
            continue
        now = time.time()
        if not line:
            break
        event = json.loads(line)
        if event["type"] == "scene":
            out.append((now - event["wall_time"]) * 1000)
            lat_ms.append(event["latency_ms"])
    s.close()


def flooder(sock_path: str, line: bytes, stop_after: float, result) -> None:
    """Runs in its own process: sends ``line`` as fast as the socket takes it, reads and counts replies."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.setblocking(False)
    chunk = line * 2000
    sent = limited = replies = 0
    buf = b""
    end = time.monotonic() + stop_after
    while time.monotonic() < end:
        try:
            sent += s.send(chunk) // len(line)
        except BlockingIOError:
            time.sleep(0.0005)
        except OSError:
            break
        try:
            data = s.recv(1 << 16)
            buf += data
            *lines, buf = buf.split(b"\n")
            replies += len(lines)
            for item in lines:
                if b'"rate_limited"' in item:
                    limited += json.loads(item)["count"]
        except (BlockingIOError, ValueError):
            pass
    s.close()
    result.put({"sent": sent, "replies": replies, "rate_limited_reported": limited})


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def part_flood(tmp: Path, art: list[str], seconds: float) -> dict:
    import multiprocessing

    out = {}
    for case, line in (("no flooder", None), ("flooding ping", b'{"type":"ping"}\n'), ("flooding no-op set", b'{"type":"set","k":1}\n')):
        proc, sock, log = start_daemon(tmp, ["--source", f"file:{long_file(tmp)}", "--realtime", "--k", "1", "--mode", "sliding", *art], name="flood")
        time.sleep(2)
        delivery: list[float] = []
        processing: list[float] = []
        clients = [threading.Thread(target=good_client, args=(sock, seconds, delivery, processing)) for _ in range(3)]
        for c in clients:
            c.start()
        result = multiprocessing.Queue()
        flood = None
        if line is not None:
            flood = multiprocessing.Process(target=flooder, args=(str(sock), line, seconds, result))
            flood.start()
        for c in clients:
            c.join()
        flooded = result.get(timeout=30) if flood is not None else {}
        if flood is not None:
            flood.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        text = log.read_text(errors="replace")
        out[case] = {
            "delivery_ms_p50": pct(delivery, 50), "delivery_ms_p99": pct(delivery, 99), "scenes": len(delivery),
            "processing_ms_p50": pct(processing, 50), "processing_ms_p99": pct(processing, 99),
            "log_lines": len(text.splitlines()), "log_bytes": len(text.encode()), **flooded,
        }
        print(f"  {case:20s} {out[case]}", flush=True)
        (tmp / "flood.sock").unlink(missing_ok=True)
    return out


# --- PulseAudio ---------------------------------------------------------------------------------------


class Pulse:
    SCRIPT = "load-module module-native-protocol-unix\nload-module module-null-sink sink_name=edgeasc rate=44100 channels=2\nset-default-source edgeasc.monitor\n"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ea-pulse-"))
        os.chmod(self.dir, 0o700)
        (self.dir / "p.pa").write_text(self.SCRIPT)
        self.env = dict(ENV, XDG_RUNTIME_DIR=str(self.dir), HOME=str(self.dir))
        cmd = [shutil.which("pulseaudio"), "--daemonize=no", "--exit-idle-time=-1", "-n", "-F", str(self.dir / "p.pa"), "--disallow-exit"]
        if os.geteuid() == 0:
            cmd.insert(1, "--system=false")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("pulseaudio did not start")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def notify_recorder(path: Path, pings: list, stop: threading.Event) -> threading.Thread:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)

    def run():
        while not stop.is_set():
            try:
                if s.recv(200) == b"WATCHDOG=1":
                    pings.append(time.monotonic())
            except (TimeoutError, OSError):
                pass
        s.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Lines:
    """Lines of a socket with a timeout per recv (a socket file object is unusable after one timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)  # TimeoutError after the socket's timeout
            if not chunk:
                return b""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"


def wait_event(f, predicate, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = f.readline()
        except TimeoutError:
            continue
        if not line:
            return None
        event = json.loads(line)
        if predicate(event):
            return event
    return None


def frozen_daemon(tmp: Path, art: list[str], pulse: Pulse, name: str):
    config = tmp / "frozen.yaml"
    config.write_text("audio:\n  retry_min: 0.5\n  retry_max: 2.0\n  no_data_timeout: 5.0\n")
    pings: list[float] = []
    stop = threading.Event()
    notify = tmp / f"{name}.notify"
    notify.unlink(missing_ok=True)
    recorder = notify_recorder(notify, pings, stop)
    env = dict(pulse.env, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="10000000")
    proc, sock, log = start_daemon(tmp, ["--config", str(config), "--source", "mic:pulse", "--k", "1", *art], env=env, name=name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    s.settimeout(1)
    return proc, s, Lines(s), pings, stop, recorder, log


def part_frozen(tmp: Path, art: list[str], frozen_s: float) -> dict:
    pulse = Pulse()
    try:
        proc, s, f, pings, stop, recorder, log = frozen_daemon(tmp, art, pulse, "frozen")
        assert wait_event(f, lambda e: e["type"] == "scene", 30), "no scene before the freeze"
        t0 = time.monotonic()
        pulse.proc.send_signal(signal.SIGSTOP)
        lost = wait_event(f, lambda e: e["type"] == "error", frozen_s)
        lost_s = time.monotonic() - t0
        time.sleep(max(0.0, frozen_s - (time.monotonic() - t0)))
        t1 = time.monotonic()
        pulse.proc.send_signal(signal.SIGCONT)
        times = [t0] + [t for t in pings if t0 <= t <= t1] + [t1]
        gap = max(b - a for a, b in zip(times, times[1:]))
        back = wait_event(f, lambda e: e["type"] == "error", 60)
        back_s = time.monotonic() - t1
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        stop.set()
        out = {"frozen_s": frozen_s, "source_lost_after_s": round(lost_s, 2), "lost_code": lost and lost["code"],
               "longest_watchdog_gap_s": round(gap, 2), "watchdog_pings_while_frozen": len(times) - 2,
               "source_back_after_thaw_s": round(back_s, 2), "back_code": back and back["code"], "exit": rc}
        print(f"  {out}", flush=True)
        return out
    finally:
        pulse.close()


def part_shutdown(tmp: Path, art: list[str], runs: int) -> dict:
    times, codes = [], []
    for i in range(runs):
        proc, sock, log = start_daemon(tmp, ["--source", f"file:{long_file(tmp)}", "--no-realtime", *art], name=f"stop{i}")
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        codes.append(proc.wait(60))
        times.append(round(time.monotonic() - t0, 2))
    out = {"fast_file": {"exit_codes": codes, "seconds": times, "max_s": max(times)}}
    print(f"  fast file source: {out['fast_file']}", flush=True)
    frozen_times, frozen_codes = [], []
    pulse = Pulse()
    try:
        for i in range(max(1, runs // 2)):
            proc, s, f, pings, stop, recorder, log = frozen_daemon(tmp, art, pulse, f"fz{i}")
            wait_event(f, lambda e: e["type"] == "scene", 30)
            pulse.proc.send_signal(signal.SIGSTOP)
            time.sleep(7.0)  # lost (5 s without audio), the close of the stream stuck in PortAudio
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                frozen_codes.append(proc.wait(60))
            finally:
                pulse.proc.send_signal(signal.SIGCONT)
            frozen_times.append(round(time.monotonic() - t0, 2))
            stop.set()
            time.sleep(2)
    finally:
        pulse.close()
    out["frozen_device"] = {"exit_codes": frozen_codes, "seconds": frozen_times, "max_s": max(frozen_times)}
    print(f"  frozen device: {out['frozen_device']}", flush=True)
    return out


def part_fds(tmp: Path, art: list[str]) -> dict:
    with socket.socket() as probe:  # a free port (server.tcp takes no port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(["prlimit", "--nofile=1024:1024", *CLI, "run", "--socket", str(tmp / "fd.sock"), "--tcp", f"127.0.0.1:{port}",
                             "--source", f"file:{long_file(tmp)}", "--realtime", *art], env=ENV, stdout=subprocess.DEVNULL, stderr=open(tmp / "fd.log", "wb"))
    while not (tmp / "fd.sock").exists():
        if proc.poll() is not None:
            raise RuntimeError((tmp / "fd.log").read_text()[-2000:])
        time.sleep(0.05)
    time.sleep(1)
    base_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
    conns = []
    for _ in range(1100):
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    time.sleep(3)
    fds_under_flood = len(os.listdir(f"/proc/{proc.pid}/fd"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as good:
        good.settimeout(5)
        good.connect(str(tmp / "fd.sock"))
        first = json.loads(good.makefile("rb").readline() or b"{}")
    busy = 0
    for c in conns[-20:]:
        c.settimeout(2)
        try:
            busy += b'"busy"' in c.recv(4096)
        except OSError:
            pass
    for c in conns:
        c.close()
    time.sleep(1)
    status = Path(f"/proc/{proc.pid}/status").read_text()
    hwm_mb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(30)
    err = (tmp / "fd.log").read_text(errors="replace")
    out = {"connections_made": len(conns), "fds_before": base_fds, "fds_with_all_connections": fds_under_flood,
           "good_unix_client_first_event": first.get("type") or first.get("code"), "last_20_told_busy": busy,
           "stderr_lines": len(err.splitlines()), "stderr_bytes": len(err.encode()), "tracebacks": err.count("Traceback"), "daemon_peak_rss_mb": round(hwm_mb, 1), "exit": rc}
    print(f"  {out}", flush=True)
    return out


def part_security() -> dict:
    if shutil.which("systemd-analyze") is None:
        return {"available": False}
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(REPO / "systemd" / "edge-asc.service")],
                       capture_output=True, text=True, timeout=60)
    tail = [line for line in (r.stdout + r.stderr).splitlines() if "Overall exposure" in line or "Failed" in line or "rror" in line]
    print(f"  exit {r.returncode}: {tail[-3:]}", flush=True)
    return {"available": True, "exit": r.returncode, "summary": tail[-3:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="memory,flood,frozen,shutdown,fds,security")
    parser.add_argument("--tiny", action="store_true", help="the test fixture's model and index instead of the shipped ones")
    parser.add_argument("--flood-s", type=float, default=20.0)
    parser.add_argument("--frozen-s", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--tree", type=Path, help="run the daemon of another checkout (a baseline), without writing bytecode into it")
    args = parser.parse_args()
    if args.tree:
        ENV.update(PYTHONPATH=str(args.tree.resolve()), PYTHONDONTWRITEBYTECODE="1")
        os.chdir(args.tree)  # python -m edge_asc looks in the working directory first
    art = artifacts(args.tiny)
    results = {"artifacts": art}
    tmp = Path(tempfile.mkdtemp(prefix="ea-hostile-"))
    try:
        for part in args.parts.split(","):
            print(f"{part}:", flush=True)
            if part == "memory":
                results[part] = part_memory(tmp, art)
            elif part == "flood":
                results[part] = part_flood(tmp, art, args.flood_s)
            elif part == "frozen":
                results[part] = part_frozen(tmp, art, args.frozen_s)
            elif part == "shutdown":
                results[part] = part_shutdown(tmp, art, args.runs)
            elif part == "fds":
                results[part] = part_fds(tmp, art)
            elif part == "security":
                results[part] = part_security()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
