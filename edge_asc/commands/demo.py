"""``edge-asc demo``: the whole pipeline on audio the model never heard, through the daemon and its socket.

The audio is a few ambience files from Debian's archive (edge_asc.demo_audio: fetched with ``apt-get
download`` on first use, cached, never installed; the list with licences is edge_asc/data/demo_sources.csv).
Each scene's files are joined into one stream written to a temporary WAV file. A daemon (``edge-asc run
--source file:...``, a real subprocess, with an empty temporary ``--enrolled`` folder, never the user's)
serves it on a private Unix socket, waiting for its first client; the demo connects as a subscriber and
prints each ``scene`` event with the true scene beside it, then a tally per scene and overall.

Then, where enrolment exists, it enrols the first ``ENROL_SECONDS`` of each scene (``edge-asc enroll``
into that temporary folder) and plays the rest of each scene again: the tally on that same audio before
and after enrolment. Without apt or network it says in one line how to run on a file or the microphone.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np

from edge_asc.daemon.config import DecisionConfig
from edge_asc.demo_audio import DemoAudioUnavailable, Place, load_places

log = logging.getLogger(__name__)

HELP = "run the whole pipeline on audio the model never heard (from Debian's archive) and print the scene events as a subscriber sees them"

CONNECT_TIMEOUT_S = 30.0
ENROL_SECONDS = 10.0  # of each scene, enrolled before the second pass
OFFLINE_HINT = ("run the model on your own audio instead: `edge-asc classify FILE` for a sound file, or "
                "`edge-asc run --source mic` with `edge-asc listen` for the microphone")  # fmt: skip


@dataclass(frozen=True)
class Clip:
    label: str
    start_s: float  # where the scene starts in the joined demo stream
    end_s: float


@dataclass
class Tally:
    """Decisions per true scene; decisions that straddle two scenes are counted apart, not scored."""

    heard: dict[str, Counter] = field(default_factory=dict)
    straddling: int = 0

    def add(self, truth: str, label: str) -> None:
        if "->" in truth or truth == "?":
            self.straddling += 1
        else:
            self.heard.setdefault(truth, Counter())[label] += 1

    @property
    def hits(self) -> int:
        return sum(c[label] for label, c in self.heard.items())

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.heard.values())

    def summary(self) -> str:
        share = f" ({100 * self.hits / self.total:.0f}%)" if self.total else ""
        return f"{self.hits}/{self.total} decisions right{share}; {self.straddling} straddle two scenes (not scored)"

    def lines(self) -> list[str]:
        out = []
        for label, counts in self.heard.items():
            others = ", ".join(f"{name} {n}" for name, n in counts.most_common() if name != label)
            out.append(f"{label:<16} {counts[label]:3d}/{sum(counts.values()):<3d}" + (f"  also heard: {others}" if others else ""))
        return out


@dataclass(frozen=True)
class Settings:
    realtime: bool
    k: int
    model: Path | None
    index: Path | None
    as_json: bool


@dataclass
class Pass:
    code: int
    events: list[tuple[object, str]]  # (scene event, true scene)
    first_event_s: float | None


def join(places: list[tuple[str, np.ndarray]], sample_rate: int) -> tuple[np.ndarray, list[Clip]]:
    """The scenes' audio joined into one stream, with each scene's position in it."""
    parts, clips, t = [], [], 0.0
    for label, audio in places:
        duration = audio.shape[0] / sample_rate
        clips.append(Clip(label, t, t + duration))
        parts.append(audio)
        t += duration
    return np.concatenate(parts), clips


def true_scene(clips: list[Clip], start_s: float, end_s: float) -> str:
    """The scene covering [start_s, end_s), or 'a->b' when the decision straddles two scenes."""
    labels = [c.label for c in clips if c.start_s < end_s and start_s < c.end_s]
    if not labels:
        return "?"
    return labels[0] if len(labels) == 1 else "->".join(labels)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile

    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")


def _artifact_flags(model: Path | None, index: Path | None, enrolled: Path) -> list[str]:
    flags = ["--enrolled", str(enrolled)]
    if model is not None:
        flags += ["--model", str(model)]
    if index is not None:
        flags += ["--index", str(index)]
    return flags


def daemon_command(wav: Path, socket_path: Path, realtime: bool, k: int, model: Path | None, index: Path | None,
                   enrolled: Path) -> list[str]:  # fmt: skip
    cmd = [
        sys.executable, "-m", "edge_asc", "--log-level", "WARNING", "run",
        "--source", f"file:{wav}",
        "--realtime" if realtime else "--no-realtime",
        "--socket", str(socket_path),
        "--wait-for-client",
        "--k", str(k),
    ]  # fmt: skip
    return cmd + _artifact_flags(model, index, enrolled)


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


def play(audio: np.ndarray, clips: list[Clip], rate: int, work: Path, enrolled: Path, settings: Settings, out: TextIO, t0: float) -> Pass:
    """One pass: a daemon subprocess on ``audio``; every scene event printed with its true scene."""
    wav, socket_path = work / "demo.wav", work / "demo.sock"
    write_wav(wav, audio, rate)
    cmd = daemon_command(wav, socket_path, settings.realtime, settings.k, settings.model, settings.index, enrolled)
    log.info("starting the daemon: %s", " ".join(cmd))
    daemon = subprocess.Popen(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    events, first = [], None
    try:
        client = _connect(socket_path, daemon, CONNECT_TIMEOUT_S)
        print(f"# {len(clips)} scenes, {audio.shape[0] / rate:.1f} s of audio, k={settings.k}, "
              f"{'real time' if settings.realtime else 'as fast as possible'}; labels: {', '.join(client.hello.labels)}", file=out, flush=True)  # fmt: skip
        with client:
            for event, truth in _scene_events(client, clips):
                first = time.monotonic() - t0 if first is None else first
                events.append((event, truth))
                _print_event(event, truth, out, settings.as_json)
        daemon.wait(timeout=30)
        return Pass(daemon.returncode, events, first)
    finally:
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        socket_path.unlink(missing_ok=True)


def tally(events: list[tuple[object, str]], clips: list[Clip] | None = None, skip_s: float = 0.0) -> Tally:
    """The decisions' tally; with ``clips``, only decisions that start ``skip_s`` or more into their scene."""
    result = Tally()
    for event, truth in events:
        if clips is not None:
            scene = next((c for c in clips if c.label == truth and c.start_s <= event.stream_start_s < c.end_s), None)
            if scene is None or event.stream_start_s < scene.start_s + skip_s:
                continue
        result.add(truth, event.label)
    return result


def _print_tally(title: str, result: Tally, out: TextIO) -> None:
    print(f"# {title}: {result.summary()}", file=out, flush=True)
    for line in result.lines():
        print(f"#   {line}", file=out, flush=True)


def enrol_places(places: list[Place], rate: int, work: Path, enrolled: Path, settings: Settings, seconds: float, out: TextIO) -> list[Place]:
    """``edge-asc enroll`` of each scene's first ``seconds`` under its true label; the scenes enrolled."""
    done = []
    for place in places:
        head = place.audio[: int(seconds * rate)]
        if place.audio.shape[0] <= head.shape[0]:
            print(f"# {place.label}: shorter than {seconds:g} s, not enrolled", file=out, flush=True)
            continue
        wav = work / f"enrol-{place.label}.wav"
        write_wav(wav, head, rate)
        cmd = [sys.executable, "-m", "edge_asc", "--log-level", "WARNING", "enroll", "--label", place.label, str(wav)]
        got = subprocess.run(cmd + _artifact_flags(settings.model, settings.index, enrolled), stdout=subprocess.PIPE, text=True)
        print(f"# {got.stdout.strip() or f'{place.label}: enrolment refused (exit code {got.returncode})'}", file=out, flush=True)
        if got.returncode == 0:
            done.append(place)
    return done


def enrolment_available() -> bool:
    return importlib.util.find_spec("edge_asc.runtime.enrol") is not None


def run_demo(realtime: bool = True, k: int = 3, model: Path | None = None, index: Path | None = None, out: TextIO = sys.stdout,
             as_json: bool = False, places: list[Place] | None = None, enrol_seconds: float | None = ENROL_SECONDS) -> int:  # fmt: skip
    """Run the demo; returns the process exit code. ``places``: the scenes (default: fetched from Debian's
    archive); ``enrol_seconds``: None for no enrolment pass."""
    from edge_asc.paths import default_model_path
    from edge_asc.runtime.encoder import Encoder

    t0 = time.monotonic()
    rate = Encoder(model or default_model_path()).meta.feature_config.sample_rate
    if places is None:
        try:
            places = load_places(rate, say=lambda line: print(f"# {line}", file=out, flush=True))
        except DemoAudioUnavailable as exc:
            log.error("cannot fetch the demo's audio from Debian's archive (%s); %s", exc, OFFLINE_HINT)
            return 3
    settings = Settings(realtime, k, model, index, as_json)
    with tempfile.TemporaryDirectory(prefix="edge-asc-demo-") as tmp:
        work, enrolled = Path(tmp), Path(tmp) / "enrolled"
        audio, clips = join([(p.label, p.audio) for p in places], rate)
        first = play(audio, clips, rate, work, enrolled, settings, out, t0)
        if first.code != 0:
            return first.code
        _print_tally("tally", tally(first.events), out)
        print(f"# first event {first.first_event_s if first.first_event_s is not None else float('nan'):.2f} s after start; "
              "the model never heard this audio (see edge_asc/data/demo_sources.csv)", file=out, flush=True)  # fmt: skip
        if enrol_seconds is None or not enrolment_available():
            return 0
        print(f"# enrolling the first {enrol_seconds:g} s of each scene into a temporary folder, then playing the rest again", file=out, flush=True)
        kept = enrol_places(places, rate, work, enrolled, settings, enrol_seconds, out)
        if not kept:
            return 0
        rest, rest_clips = join([(p.label, p.audio[int(enrol_seconds * rate):]) for p in kept], rate)
        second = play(rest, rest_clips, rate, work, enrolled, settings, out, t0)
        enrolled_labels = {p.label for p in kept}
        before = tally([(e, t) for e, t in first.events if t in enrolled_labels], clips, skip_s=enrol_seconds)
        _print_tally("before enrolment, on the audio played again", before, out)
        _print_tally("after enrolment", tally(second.events), out)
        return second.code


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
    parser.add_argument("--no-enrol", dest="enrol", action="store_false", help=f"skip the second pass (enrol {ENROL_SECONDS:g} s of each scene, play the rest)")


def run(args: argparse.Namespace) -> int:
    return run_demo(realtime=not args.fast, k=args.k, model=args.model, index=args.index, as_json=args.json,
                    enrol_seconds=ENROL_SECONDS if args.enrol else None)  # fmt: skip
