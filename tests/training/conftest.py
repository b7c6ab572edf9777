"""The tiny model trained once for the training tests that need a trained encoder."""

from __future__ import annotations

import pytest

from training.generated import CLASSES, generated_scenes, tiny_config


@pytest.fixture(scope="session")
def trained_tiny():
    pytest.importorskip("torch")
    from edge_asc.training.train import fit_scenes

    audio, labels, recs = generated_scenes(4, 2.4, seed=0)
    return fit_scenes(tiny_config(epochs=8, lr=3e-3), audio, labels, recs, CLASSES, progress=False)
