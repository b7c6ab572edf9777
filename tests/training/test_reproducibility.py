"""Training is reproducible across versions: the same seed and data give the weights that version 0.1.0
(commit 0c63cc8, the recipe of the shipped model and of the evaluation report) gave.

The reference numbers were computed with that commit's trainer on the generated audio below. They are
compared within a relative 1e-5, not bit for bit, so that another CPU's float kernels do not fail the test;
a change in the order of random draws (which moves every weight) does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_asc.training.config import ModelConfig, TrainConfig  # noqa: E402
from edge_asc.training.train import fit_scenes  # noqa: E402

from .generated import CLASSES, generated_recording  # noqa: E402

REFERENCE = {  # 2 epochs, seed 7, hidden 8, the default augmentation (model.parameters() of commit 0c63cc8)
    "n": 4002,
    "sum": 14.762912812322611,
    "abs_sum": 717.1662093720224,
    "first": [0.02871931530535221, -0.2087009847164154, 0.10930798947811127, 0.1151086837053299, -0.18484456837177277, -0.056439004838466644],
}


def test_a_seeded_run_gives_the_weights_of_the_shipped_recipes_trainer():
    torch.set_num_threads(1)
    kinds = ("chirps", "noise", "tones")
    assert tuple(sorted(kinds)) == tuple(sorted(CLASSES))
    audio = [generated_recording(k, 4.0, seed=10 * i + r) for i, k in enumerate(kinds) for r in range(2)]
    config = dataclasses.replace(TrainConfig(), epochs=2, batch_size=24, classes_per_batch=3, seed=7, threads=1, model=ModelConfig(hidden_size=8))
    trained = fit_scenes(config, audio, np.array([0, 0, 1, 1, 2, 2]), np.arange(6), kinds, progress=False)
    w = torch.cat([p.detach().flatten() for p in trained.model.parameters()]).double()
    assert w.numel() == REFERENCE["n"]
    np.testing.assert_allclose(float(w.sum()), REFERENCE["sum"], rtol=1e-5)
    np.testing.assert_allclose(float(w.abs().sum()), REFERENCE["abs_sum"], rtol=1e-5)
    np.testing.assert_allclose(w[:6].numpy(), REFERENCE["first"], rtol=1e-5, atol=1e-7)
