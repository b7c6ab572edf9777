"""Shared fixtures: a tiny real model and index, committed, and generated test clips; no torch.

``tiny_artifacts`` is the committed fixture of tests/fixtures/tiny/ (an ONNX encoder of hidden size 16
trained for a few epochs on the synthetic scenes of tests/audio_gen.py, a second encoder of another seed,
and an index of the training segments built with the first), copied to a temporary directory so no test
can change the committed files, plus one 6 s FLAC clip per label synthesised by tests/audio_gen.py from a
seed not heard in training. scripts/make-test-fixture.py makes the fixture (it needs torch; the tests do not).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import audio_gen

REPO = Path(__file__).resolve().parents[1]
TINY_FIXTURE = REPO / "tests" / "fixtures" / "tiny"  # made by scripts/make-test-fixture.py
MODEL_FILE = "encoder.onnx"  # indexed by INDEX_DIR
OTHER_MODEL_FILE = "encoder-other.onnx"  # another seed: INDEX_DIR does not fit it
INDEX_DIR = "index"
# real recordings, for the few tests that need them (they skip when ../shared is absent)
SHARED = next((p for p in (REPO.parent / "shared", Path("/work/shared")) if p.is_dir()), REPO.parent / "shared")
AMBIENT13 = Path(os.environ.get("EDGE_ASC_AMBIENT13", SHARED / "data" / "ambient13"))


# runs `edge-asc ARGS...` and reports, at exit, which heavy training modules the process ever imported
WRAPPER = """
import atexit, sys
def _report():
    heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'librosa', 'matplotlib'))
    sys.stderr.write('HEAVY_MODULES=' + ','.join(heavy) + '\\n')
atexit.register(_report)
from edge_asc.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class TinyArtifacts:
    model: Path  # the ONNX encoder
    index: Path  # the index directory
    labels: tuple[str, ...]
    clips: dict[str, Path]  # label -> a 6 s 16 kHz FLAC clip not used in training
    other_model: Path  # a second encoder (another seed): the index does not fit it


def build_tiny_artifacts(out: Path) -> TinyArtifacts:
    """The committed fixture copied into ``out`` (which may exist), and the generated clips written there."""
    import soundfile as sf

    shutil.copytree(TINY_FIXTURE, out, dirs_exist_ok=True)
    clips = {}
    for label in audio_gen.LABELS:
        path = out / f"{label}.flac"
        sf.write(str(path), audio_gen.clip(label), audio_gen.SAMPLE_RATE, subtype="PCM_16")
        clips[label] = path
    return TinyArtifacts(out / MODEL_FILE, out / INDEX_DIR, audio_gen.LABELS, clips, out / OTHER_MODEL_FILE)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory) -> TinyArtifacts:
    return build_tiny_artifacts(tmp_path_factory.mktemp("tiny-artifacts"))


@pytest.fixture
def sock_dir():
    """A fresh directory with a short path: Unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ea-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_stores(tmp_path_factory, monkeypatch):
    """Every test (and every process it starts) gets its own enrolled-places directory and feature cache,
    never the user's (~/.local/share/edge-asc/enrolled, ~/.cache/edge-asc/features)."""
    base = tmp_path_factory.mktemp("stores")
    monkeypatch.setenv("EDGE_ASC_ENROLLED", str(base / "enrolled"))
    monkeypatch.setenv("EDGE_ASC_CACHE", str(base / "cache"))


@pytest.fixture
def runtime_env(tmp_path) -> dict[str, str]:
    """Environment for a daemon subprocess: its own XDG_RUNTIME_DIR, one thread per library."""
    env = dict(os.environ)
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    env.update(XDG_RUNTIME_DIR=str(run_dir), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("NOTIFY_SOCKET", None)
    return env


# --- the daemon as a subprocess --------------------------------------------------------------------


class DaemonProcess:
    """`edge-asc run ...` as a subprocess, its stderr in a file."""

    def __init__(self, tmp_path: Path, env: dict, args: list[str], stdin=subprocess.DEVNULL) -> None:
        self.socket = tmp_path / "edge-asc.sock"
        self.log_path = tmp_path / "daemon.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, "run", "--socket", str(self.socket), *args],
            env=env, stdin=stdin, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no socket after {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def daemons():
    started = []

    def start(*a, **kw):
        d = DaemonProcess(*a, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


# --- a real MQTT broker ----------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path_factory):
    """A fresh mosquitto on a free loopback port (tests/mosquitto.py); skips when mosquitto is not installed."""
    import mosquitto

    if mosquitto.MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients; scripts/setup-dev.sh does)")
    b = mosquitto.Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()
