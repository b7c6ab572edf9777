"""bench_daemon.py --device-rates: the live path at a microphone's own rate, through real PulseAudio capture.

For each rate (16, 44.1, 48 kHz): a private PulseAudio server with a null sink at that rate (2 channels),
its monitor the default source; the daemon captures ``mic:pulse --rate R --channels 2`` (PortAudio via
ALSA's pulse plugin, as a USB microphone or a Pi HAT at that rate), so every block is mixed to mono and
resampled to 16 kHz in the worker (edge_asc.dsp.condition); ``paplay`` plays the bench audio, written at
that rate (no resampling in PulseAudio), into the sink. Measured on the daemon process:

- CPU per segment: the daemon's utime + stime (/proc, all threads: capture callback, ring, mixing,
  resampling, features, encoder, search, events) over the segments it processed while the audio played;
- the segment events' ``timings_ms`` (features + encoder + search, wall), median;
- resident memory once it serves (before any audio), and its peak (VmHWM) at the end.
``--tree`` runs another checkout's daemon (e.g. the one before the resampler change) for comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

PULSE_SCRIPT = """\
load-module module-native-protocol-unix
load-module module-null-sink sink_name=edgeasc rate={rate} channels=2
set-default-sink edgeasc
set-default-source edgeasc.monitor
"""


class Pulse:
    """A private PulseAudio server (own runtime directory) with one null sink at ``rate``."""

    def __init__(self, rate: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ea-pulse-"))  # short: the socket path must fit sun_path
        os.chmod(self.dir, 0o700)
        (self.dir / "bench.pa").write_text(PULSE_SCRIPT.format(rate=rate))
        self.env = dict(os.environ, XDG_RUNTIME_DIR=str(self.dir), HOME=str(self.dir))
        self.env.pop("PULSE_SERVER", None)
        cmd = [shutil.which("pulseaudio"), "--daemonize=no", "--exit-idle-time=-1", "-n", "-F", str(self.dir / "bench.pa"), "--disallow-exit"]
        if os.geteuid() == 0:
            cmd.insert(1, "--system=false")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=self.env, capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pulseaudio did not start")
            time.sleep(0.1)
        self.server = f"unix:{self.dir / 'pulse' / 'native'}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def audio_at(source16k: Path, rate: int, out: Path) -> Path:
    import soundfile as sf
    import soxr

    x, sr = sf.read(str(source16k), dtype="float32")
    y = soxr.resample(x, sr, rate) if rate != sr else x
    sf.write(str(out), np.stack([y, 0.9 * y], axis=1), rate, subtype="PCM_16")
    return out


def one_rate(daemon_cls, proc_status, proc_cpu_seconds, model: Path, index: Path, clip: Path, rate: int, work: Path, tree: Path | None) -> dict:
    pulse = Pulse(rate)
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PYTHONPATH")}
    os.environ["PULSE_SERVER"] = pulse.server  # the daemon's own XDG_RUNTIME_DIR is its work folder
    if tree is not None:
        os.environ["PYTHONPATH"] = str(tree)
    try:
        work.mkdir()
        d = daemon_cls(work, ["--model", str(model), "--index", str(index), "--source", "mic:pulse", "--rate", str(rate), "--channels", "2", "--k", "3"])
        d.wait_socket()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.socket))
        s.sendall(b'{"type": "subscribe", "events": ["segment"]}\n')
        s.settimeout(20)
        buf, timings = b"", []

        def segments(until: float) -> None:
            nonlocal buf
            while time.monotonic() < until:
                buf += s.recv(65536)
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    e = json.loads(line)
                    if e["type"] == "segment":
                        timings.append(e["timings_ms"]["total"])

        segments(time.monotonic() + 2.0)  # capture runs (silence from the null sink)
        rss_idle = proc_status(d.proc.pid, "VmRSS")
        player = subprocess.Popen(["paplay", "--device=edgeasc", str(clip)], env=dict(pulse.env, PULSE_SERVER=pulse.server))
        t0, c0, n0 = time.monotonic(), proc_cpu_seconds(d.proc.pid), len(timings)
        while player.poll() is None:
            segments(time.monotonic() + 0.5)
        t1, c1, n1 = time.monotonic(), proc_cpu_seconds(d.proc.pid), len(timings)
        hwm = proc_status(d.proc.pid, "VmHWM")
        s.close()
        rc = d.stop()
        if rc != 0:
            raise RuntimeError(f"the daemon exited with {rc}; see {work / 'daemon.log'}")
        played = timings[n0:n1]
        return {"rate": rate, "segments": n1 - n0, "seconds": t1 - t0, "cpu_ms_per_segment": (c1 - c0) * 1000 / max(n1 - n0, 1),
                "cpu_share": (c1 - c0) / (t1 - t0), "total_ms_median": float(np.median(played)) if played else float("nan"),
                "rss_idle_mb": rss_idle, "hwm_mb": hwm}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        pulse.close()


def run(daemon_cls, proc_status, proc_cpu_seconds, model: Path, index: Path, audio16k: Path, rates: list[int], work: Path, tree: Path | None) -> list[dict]:
    if shutil.which("pulseaudio") is None or shutil.which("paplay") is None:
        raise SystemExit("--device-rates needs pulseaudio and pulseaudio-utils (apt install pulseaudio pulseaudio-utils libasound2-plugins)")
    rows = []
    print(f"{'rate':>6} {'segments':>8} {'CPU ms/segment':>15} {'% core':>7} {'pipeline ms (wall)':>19} {'RSS serving MB':>15} {'peak MB':>8}")
    for rate in rates:
        r = one_rate(daemon_cls, proc_status, proc_cpu_seconds, model, index, audio_at(audio16k, rate, work / f"clip{rate}.wav"), rate, work / f"d{rate}", tree)
        rows.append(r)
        print(f"{rate:>6} {r['segments']:>8} {r['cpu_ms_per_segment']:>15.3f} {100 * r['cpu_share']:>7.2f} {r['total_ms_median']:>19.3f} "
              f"{r['rss_idle_mb']:>15.1f} {r['hwm_mb']:>8.1f}", flush=True)
    return rows
