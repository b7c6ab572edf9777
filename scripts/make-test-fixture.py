#!/usr/bin/env python3
"""Make the tiny model and index the runtime tests use (tests/fixtures/tiny/), from generated audio.

    python3 scripts/make-test-fixture.py [OUT_DIR]     (default: tests/fixtures/tiny)

Trains two tiny encoders (hidden size 16, a few epochs, no augmentation) with seeds 0 and 1 on the
synthetic scenes of tests/audio_gen.py, exports both to ONNX, and indexes every training segment with the
first one, through the runtime's own path (onnxruntime, edge_asc.runtime.index). The second encoder is
there so tests can show that an index does not fit another encoder. Needs the train extra (torch); the
tests that use the output do not. tests/test_make_test_fixture.py checks that this script still reproduces it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import audio_gen  # noqa: E402  (tests/audio_gen.py)
import numpy as np  # noqa: E402
from conftest import INDEX_DIR, MODEL_FILE, OTHER_MODEL_FILE, TINY_FIXTURE as DEFAULT_OUT  # noqa: E402  (tests/conftest.py)

SEEDS = (0, 1)
EPOCHS = 4
HIDDEN_SIZE = 16


def train_and_export(out: Path, seed: int, name: str, audio, labels, recordings) -> Path:
    from edge_asc.training.config import AugmentConfig, ModelConfig, TrainConfig
    from edge_asc.training.export import export_onnx
    from edge_asc.training.train import fit_scenes

    config = dataclasses.replace(
        TrainConfig(),
        epochs=EPOCHS,
        batch_size=24,
        classes_per_batch=3,
        seed=seed,
        threads=1,
        model=ModelConfig(hidden_size=HIDDEN_SIZE),
        augment=AugmentConfig.off(),
    )
    trained = fit_scenes(config, audio, labels, recordings, audio_gen.LABELS, progress=False)
    return export_onnx(trained, out / name)


def build_index(out: Path, model: Path, audio, labels, recordings) -> Path:
    from edge_asc.dsp.features import FeatureExtractor
    from edge_asc.runtime.encoder import Encoder
    from edge_asc.runtime.index import SegmentIndex

    encoder = Encoder(model)
    extractor = FeatureExtractor(encoder.meta.feature_config)
    feats = [extractor.signal_features(x) for x in audio]  # [(n_i, 20, 52)]
    emb = np.concatenate([encoder.embed(f) for f in feats])  # (N, D)
    item_labels = np.concatenate([np.full(f.shape[0], y) for f, y in zip(feats, labels)])
    names = [f"{audio_gen.LABELS[y]}-{r}" for y, r in zip(labels, recordings)]
    scenes = np.concatenate([np.full(f.shape[0], name) for f, name in zip(feats, names)])
    positions = np.concatenate([np.arange(f.shape[0]) for f in feats])
    index = SegmentIndex.build(emb, item_labels, scenes, scenes, encoder.meta, M=8, ef_construction=50, ef=32, positions=positions)
    return Path(index.save(out / INDEX_DIR))


def make(out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    audio, labels, recordings = audio_gen.training_scenes()
    model = train_and_export(out, SEEDS[0], MODEL_FILE, audio, labels, recordings)
    train_and_export(out, SEEDS[1], OTHER_MODEL_FILE, audio, labels, recordings)
    build_index(out, model, audio, labels, recordings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    make(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
