"""``edge-asc demo``: the whole pipeline on bundled real recordings, through the daemon and its socket.

The bundled clips (edge_asc/data/demo/, a few seconds per class, attribution in clips.csv) are joined
into one stream and written to a temporary WAV file. A daemon (``edge-asc run --source file:...``, a
real subprocess) serves it on a private Unix socket, waiting for its first client; the demo connects
as a subscriber and prints each ``scene`` event with the true scene of the audio it used beside it.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np

from edge_asc.daemon.config import DecisionConfig
from edge_asc.dsp.audio_io import read_audio

log = logging.getLogger(__name__)

HELP = "run the whole pipeline on bundled real recordings and print the scene events as a subscriber sees them"

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"
CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Clip:
    label: str
    start_s: float  # where the clip starts in the joined demo stream
    end_s: float
    attribution: str


def load_clips(sample_rate: int, demo_dir: Path = DEMO_DIR) -> tuple[np.ndarray, list[Clip]]:
    """The bundled clips joined into one mono stream at ``sample_rate``, with their positions."""
    rows = list(csv.DictReader((demo_dir / "clips.csv").open(encoding="utf-8")))
    if not rows:
        raise FileNotFoundError(f"{demo_dir / 'clips.csv'} lists no clips")
    parts, clips, t = [], [], 0.0
    for row in rows:
        audio = read_audio(demo_dir / row["file"], sample_rate)
        duration = audio.shape[0] / sample_rate
        clips.append(Clip(row["label"], t, t + duration, row["license"]))
        parts.append(audio)
        t += duration
    return np.concatenate(parts), clips


def true_scene(clips: list[Clip], start_s: float, end_s: float) -> str:
    """The clip label covering [start_s, end_s), or 'a->b' when the decision straddles two clips."""
    labels = [c.label for c in clips if c.start_s < end_s and start_s < c.end_s]
    if not labels:
        return "?"
    return labels[0] if len(labels) == 1 else "->".join(labels)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile

    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")


def daemon_command(wav: Path, socket_path: Path, realtime: bool, k: int, model: Path | None, index: Path | None) -> list[str]:
    cmd = [
        sys.executable, "-m", "edge_asc", "--log-level", "WARNING", "run",
        "--source", f"file:{wav}",
        "--realtime" if realtime else "--no-realtime",
        "--socket", str(socket_path),
        "--wait-for-client",
        "--k", str(k),
    ]  # fmt: skip
    if model is not None:
        cmd += ["--model", str(model)]
    if index is not None:
        cmd += ["--index", str(index)]
    return cmd


def _connect(socket_path: Path, daemon: subprocess.Popen, timeout: float):
    from edge_asc.protocol.client import Client, DaemonNotRunning

    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with code {daemon.returncode} before serving (see its messages above)")
        try:
            client = Client(f"unix://{socket_path}")
            client.connect()
            return client
        except (DaemonNotRunning, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not open {socket_path} within {timeout:.0f} s") from None
            time.sleep(0.05)


def run_demo(realtime: bool = True, k: int = 3, model: Path | None = None, index: Path | None = None,
             out: TextIO = sys.stdout, as_json: bool = False) -> int:  # fmt: skip
    """Run the demo; returns the process exit code. Prints one line per scene event."""
    from edge_asc.runtime.encoder import Encoder
    from edge_asc.paths import default_model_path

    t0 = time.monotonic()
    model_path = model or default_model_path()
    rate = Encoder(model_path).meta.feature_config.sample_rate
    audio, clips = load_clips(rate)
    with tempfile.TemporaryDirectory(prefix="edge-asc-demo-") as tmp:
        wav, socket_path = Path(tmp) / "demo.wav", Path(tmp) / "demo.sock"
        write_wav(wav, audio, rate)
        cmd = daemon_command(wav, socket_path, realtime, k, model, index)
        log.info("starting the daemon: %s", " ".join(cmd))
        daemon = subprocess.Popen(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            client = _connect(socket_path, daemon, CONNECT_TIMEOUT_S)
            hits, total, first_event_s = 0, 0, None
            print(f"# {len(clips)} clips, {audio.shape[0] / rate:.1f} s of audio, k={k}, "
                  f"{'real time' if realtime else 'as fast as possible'}; labels: {', '.join(client.hello.labels)}", file=out)  # fmt: skip
            with client:
                for event, truth in _scene_events(client, clips):
                    if first_event_s is None:
                        first_event_s = time.monotonic() - t0
                    total += 1
                    hits += event.label == truth
                    _print_event(event, truth, out, as_json)
            daemon.wait(timeout=30)
            pure = [c.label for c in clips]
            print(f"# {hits}/{total} decisions match the true scene ({len(pure)} scenes; decisions that straddle two "
                  f"clips count as misses); first event {first_event_s if first_event_s is not None else float('nan'):.2f} s after start", file=out)  # fmt: skip
            print("# the bundled clips come from the recordings the default model was trained on: see docs/model_card.md "
                  "for leak-free accuracy", file=out)  # fmt: skip
            return 0 if daemon.returncode == 0 else daemon.returncode
        finally:
            if daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    daemon.kill()


def _scene_events(client, clips: list[Clip]) -> Iterator[tuple[object, str]]:
    from edge_asc.protocol.messages import Error, Scene

    for event in client:
        if isinstance(event, Scene):
            yield event, true_scene(clips, event.stream_start_s, event.stream_end_s)
        elif isinstance(event, Error):
            log.warning("daemon error event: %s: %s", event.code, event.message)


def _print_event(event, truth: str, out: TextIO, as_json: bool) -> None:
    if as_json:
        import json

        out.write(json.dumps({"event": event.to_dict(), "true_scene": truth}) + "\n")
    else:
        mark = "ok " if event.label == truth else "   "
        out.write(
            f"{mark}{event.stream_start_s:6.2f}-{event.stream_end_s:6.2f} s  heard {event.label:<16} "
            f"conf {event.confidence:4.2f}  true {truth:<16}  latency {event.latency_ms:5.2f} ms\n"
        )
    out.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="feed the audio as fast as possible instead of in real time")
    parser.add_argument("--k", type=int, default=DecisionConfig().k, metavar="N", help="segments per decision (300 ms each)")
    parser.add_argument("--model", type=Path, metavar="ONNX", help="encoder file (default: the shipped model)")
    parser.add_argument("--index", type=Path, metavar="DIR", help="index directory (default: the shipped index)")
    parser.add_argument("--json", action="store_true", help="print each event as a JSON line with its true scene")


def run(args: argparse.Namespace) -> int:
    return run_demo(realtime=not args.fast, k=args.k, model=args.model, index=args.index, as_json=args.json)
