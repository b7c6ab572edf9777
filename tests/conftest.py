"""Shared fixtures: a tiny real model and index, trained in seconds on real ambient13 recordings.

``tiny_artifacts`` trains a small encoder (hidden 16, a few epochs) on the first seconds of one
recording of each of three classes, exports it to ONNX with edge_asc.training.export, embeds every training
segment with the exported model (the runtime path, onnxruntime) and builds an index with
edge_asc.runtime.index. It also writes short test clips (later seconds of the same recordings) as FLAC files.
Only this fixture imports torch; the daemon under test never does.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ambient13"
if not DATA.is_dir():
    DATA = Path("/work/shared/data/ambient13")
TINY_CLASSES = (
    ("rain", "rain/blanket__rain.flac"),
    ("forest_birds", "forest_birds/blanket__birds.flac"),
    ("street_traffic", "street_traffic/moodist__busy-street.flac"),
)
TRAIN_SECONDS = 24.0  # from the start of each recording
CLIP_OFFSET_SECONDS = 40.0  # test clips start here (not heard in training)
CLIP_SECONDS = 6.0


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


def _read(rel: str, offset: float, seconds: float, rate: int) -> np.ndarray:
    from edge_asc.dsp.audio_io import read_audio

    audio = read_audio(DATA / rel, rate)
    a = int(offset * rate)
    return audio[a : a + int(seconds * rate)]


def build_tiny_artifacts(out: Path, seed: int = 0) -> TinyArtifacts:
    import soundfile as sf
    import torch

    from edge_asc.runtime.encoder import Encoder
    from edge_asc.training.export import export_onnx
    from edge_asc.dsp.features import FeatureExtractor
    from edge_asc.runtime.index import SegmentIndex
    from edge_asc.training.train import fit_scenes
    from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig

    torch.set_num_threads(1)
    labels = tuple(label for label, _ in TINY_CLASSES)
    base = TrainConfig()
    rate = base.features.sample_rate
    audio = [_read(rel, 0.0, TRAIN_SECONDS, rate) for _, rel in TINY_CLASSES]
    y = np.arange(len(labels), dtype=np.int64)
    models = []
    for s in (seed, seed + 1):
        config = dataclasses.replace(
            base,
            epochs=3,
            batch_size=24,
            classes_per_batch=3,
            seed=s,
            threads=1,
            model=ModelConfig(hidden_size=16),
            augment=AugmentConfig.off(),
        )
        trained = fit_scenes(config, audio, y, y, labels, progress=False)
        models.append(export_onnx(trained, out / f"tiny-{s}.onnx"))
    encoder = Encoder(models[0])
    extractor = FeatureExtractor(encoder.meta.feature_config)
    feats = [extractor.signal_features(x) for x in audio]  # [(n_i, 20, 52)]
    emb = np.concatenate([encoder.embed(f) for f in feats])  # (N, D)
    item_labels = np.concatenate([np.full(f.shape[0], i) for i, f in enumerate(feats)])
    scenes = np.concatenate([np.full(f.shape[0], rel) for (_, rel), f in zip(TINY_CLASSES, feats)])
    index = SegmentIndex.build(emb, item_labels, scenes, scenes, encoder.meta, M=8, ef_construction=50, ef=32)
    index_dir = index.save(out / "tiny-index")
    clips = {}
    for label, rel in TINY_CLASSES:
        clip = _read(rel, CLIP_OFFSET_SECONDS, CLIP_SECONDS, rate)
        path = out / f"{label}.flac"
        sf.write(str(path), clip, rate, subtype="PCM_16")
        clips[label] = path
    return TinyArtifacts(models[0], Path(index_dir), labels, clips, models[1])


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory) -> TinyArtifacts:
    if not DATA.is_dir():
        pytest.skip(f"the ambient13 recordings are not at {DATA}")
    return build_tiny_artifacts(tmp_path_factory.mktemp("tiny-artifacts"))


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
