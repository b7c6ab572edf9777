"""The waveform augmentations (training/augment.py): level, colour, grid, mixing, seeding."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edge_asc.training.augment import Augmenter, mix_at_snr, random_eq, random_gain, random_shift
from edge_asc.training.config import AugmentConfig


def test_augmentations_change_level_colour_and_grid_reproducibly():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32)
    cfg = AugmentConfig(gain_db=6.0)
    g = random_gain(x, np.random.default_rng(1), 6.0)
    ratio_db = 20 * np.log10(np.std(g) / np.std(x))
    assert -6.0 <= ratio_db <= 6.0 and abs(ratio_db) > 1e-3
    eq = random_eq(x, np.random.default_rng(2), cfg, 16000)
    assert eq.shape == x.shape and eq.dtype == np.float32 and not np.allclose(eq, x)
    flat = random_eq(x, np.random.default_rng(2), AugmentConfig(eq_tilt_db=0.0, eq_band_db=0.0), 16000)
    np.testing.assert_allclose(flat, x, atol=1e-5)  # a flat curve is the identity
    s = random_shift(x, np.random.default_rng(3), 4800)
    assert 16000 - 4800 < s.shape[0] <= 16000 and np.array_equal(s, x[16000 - s.shape[0] :])


def test_mixing_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype(np.float32)
    other = 3.0 * rng.standard_normal(3000).astype(np.float32)  # shorter: looped
    y = mix_at_snr(x, other, np.random.default_rng(1), (10.0, 10.0))
    noise = y - x
    snr = 10 * np.log10(np.mean(x * x) / np.mean(noise * noise))
    assert y.shape == x.shape and snr == pytest.approx(10.0, abs=0.01)


def test_augmenter_mixes_other_recordings_of_the_same_class_and_is_seeded():
    aug = Augmenter(AugmentConfig(mix_prob=1.0), 16000, 4800)
    labels = np.array([0, 0, 0, 1, 1, 2])
    recordings = np.array([0, 0, 1, 2, 2, 3])
    partner = aug.partners(labels, recordings, np.random.default_rng(0))
    assert partner[0] == 2 and partner[1] == 2 and partner[2] in (0, 1)  # another recording when there is one
    assert partner[3] == 4 and partner[4] == 3  # else another scene of the class
    assert partner[5] == -1  # nothing to mix with
    audio = [np.random.default_rng(i).standard_normal(9600).astype(np.float32) for i in range(6)]
    keys = [11, 12, 13, 14, 15, 16]
    a = aug.draw(audio, labels, recordings, 7, 0, keys)
    b = aug.draw(audio, labels, recordings, 7, 0, keys)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v[: u.shape[0]]) for u, v in zip(a, audio))
    # the time shift drops fewer leading samples than one segment
    assert all(9600 - 4800 < u.shape[0] <= 9600 for u in a)
    # without it every scene keeps its length and is measurably changed, and the inputs are left as they were
    inputs = [x.copy() for x in audio]
    unshifted = Augmenter(AugmentConfig(mix_prob=1.0, time_shift=False), 16000, 4800)
    c = unshifted.draw(audio, labels, recordings, 7, 0, keys)
    assert all(u.shape == v.shape and u.dtype == np.float32 for u, v in zip(c, audio))
    change = [float(np.linalg.norm(u - v) / np.linalg.norm(v)) for u, v in zip(c, audio)]
    assert min(change) > 0.1, change
    assert all(np.array_equal(x, x0) for x, x0 in zip(audio, inputs))
    off = Augmenter(AugmentConfig.off(), 16000, 4800).draw(audio, labels, recordings, 0, 0, keys)
    assert all(u is v for u, v in zip(off, audio))


def test_a_scenes_draw_depends_on_the_seed_the_draw_and_the_scene_only():
    aug = Augmenter(AugmentConfig(mix_prob=1.0), 16000, 4800)
    labels, recordings = np.array([0, 0, 1, 1]), np.array([0, 1, 2, 3])
    audio = [np.random.default_rng(i).standard_normal(9600).astype(np.float32) for i in range(4)]
    keys = [101, 102, 103, 104]
    d0 = aug.draw(audio, labels, recordings, 3, 0, keys)
    assert np.array_equal(aug.draw(audio, labels, recordings, 3, 0, keys)[2], d0[2])
    assert not np.array_equal(aug.draw(audio, labels, recordings, 3, 1, keys)[2][:4000], d0[2][:4000])  # another draw
    assert not np.array_equal(aug.draw(audio, labels, recordings, 4, 0, keys)[2][:4000], d0[2][:4000])  # another seed
    # scene 2's draw is the same when the scenes of another class change (its stream is its own)
    other = [audio[0] * 0.5, audio[1] * 0.5, audio[2], audio[3]]
    assert np.array_equal(aug.draw(other, labels, recordings, 3, 0, keys)[2], d0[2])


def test_partners_of_a_large_class_take_memory_in_proportion_to_its_scenes():
    aug = Augmenter(AugmentConfig(mix_prob=1.0), 16000, 4800)
    labels, recordings = np.zeros(6000, dtype=np.int64), np.arange(6000) // 3  # one class, 2000 recordings of 3 scenes
    tracemalloc.start()
    partner = aug.partners(labels, recordings, np.random.default_rng(0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000, peak  # an (m, m) matrix of this class would be 36 million cells
    assert np.all(recordings[partner] != recordings) and len(np.unique(partner)) > 3000


def test_every_allowed_partner_is_drawn_and_no_other():
    aug = Augmenter(AugmentConfig(mix_prob=1.0), 16000, 4800)
    labels, recordings = np.array([0, 0, 0, 0, 1, 1, 1]), np.array([5, 5, 6, 7, 8, 8, 8])
    seen = [set() for _ in labels]
    for draw in range(200):
        for i, j in enumerate(aug.partners(labels, recordings, np.random.default_rng(draw))):
            seen[i].add(int(j))
    assert seen[:4] == [{2, 3}, {2, 3}, {0, 1, 3}, {0, 1, 2}]  # another recording of the class
    assert seen[4:] == [{5, 6}, {4, 6}, {4, 5}]  # a single recording: another scene of it
