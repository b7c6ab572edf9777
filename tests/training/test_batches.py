"""Class-balanced batches and the input normalisation (training/batches.py)."""

from __future__ import annotations

import numpy as np

from edge_asc.training.batches import SceneSource, batch_shape, class_balanced_batches, normalization, steps_per_epoch
from edge_asc.training.config import TrainConfig
from edge_asc.training.streams import BATCH_STREAM, stream_rng
from training.generated import generated_scenes, tiny_config


def test_batches_hold_as_many_items_of_each_drawn_class_and_cover_small_classes():
    labels = np.array([0] * 1010 + [1] * 30)  # a large and a small class
    cfg = TrainConfig(batch_size=16, classes_per_batch=2)
    batches = class_balanced_batches(labels, cfg, np.random.default_rng(0))
    assert len(batches) == 65 and all(b.shape == (16,) for b in batches)
    for b in batches:
        assert np.sum(labels[b] == 0) == 8 and np.sum(labels[b] == 1) == 8  # every batch: 8 of each class
    items = np.concatenate(batches)
    assert len(np.unique(items[labels[items] == 1])) == 30  # every item of the small class is drawn


def test_batches_are_seeded_and_leave_out_classes_with_a_single_item():
    labels = np.array([0, 0, 0, 1, 1, 2])
    cfg = TrainConfig(batch_size=4, classes_per_batch=2)
    a = class_balanced_batches(labels, cfg, np.random.default_rng(5))
    b = class_balanced_batches(labels, cfg, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert 5 not in np.concatenate(a)  # class 2 has no positive for its one item


def test_normalisation_is_the_mean_and_std_over_every_window():
    feats = np.random.default_rng(0).normal(5.0, 2.0, (50, 20, 52)).astype(np.float32)
    mean, std = normalization(feats)
    np.testing.assert_allclose(mean, feats.reshape(-1, 52).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, feats.reshape(-1, 52).std(0), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32


def test_a_segment_store_gathers_rows_across_its_parts_and_normalises_as_the_whole_array():
    from edge_asc.training.batches import SegmentStore

    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, (n, 20, 52)).astype(np.float32) for n in (5, 0, 9, 1)]
    whole = np.concatenate(parts)
    store = SegmentStore(parts, 20, 52)
    idx = np.array([14, 0, 5, 4, 13])
    assert store.shape == whole.shape and np.array_equal(store[idx], whole[idx]) and np.array_equal(store[2:7], whole[2:7])
    assert np.array_equal(store[whole[:, 0, 0] > 3], whole[whole[:, 0, 0] > 3])
    with np.testing.assert_raises(IndexError):
        store[np.array([15])]
    for got, want in zip(normalization(store), normalization(whole)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_every_rank_trains_as_many_batches_as_steps_in_every_epoch():
    audio, labels, recs = generated_scenes(2, 2.45, seed=1)  # 8 clean segments a scene; the time shift can drop one
    cfg = tiny_config(batch_size=25)  # 3 classes x 8: batches of 24
    source = SceneSource(cfg, audio, labels, recs)
    clean_y = source.clean()[1]
    p, k = batch_shape(clean_y, cfg)
    assert (p, k) == (3, 8)
    shorter = 0
    for world in (1, 2, 3):
        steps = steps_per_epoch(clean_y.shape[0], p * k, world)
        for epoch in range(4):
            y = source.epoch(epoch)[1]
            shorter += y.shape[0] < clean_y.shape[0]
            for rank in range(world):
                batches = class_balanced_batches(y, cfg, stream_rng(cfg.seed, BATCH_STREAM, epoch, rank), steps)
                assert len(batches) == steps and all(b.shape == (p * k,) for b in batches), (world, epoch, rank)
    assert shorter > 0  # some epochs have fewer segments than the clean ones

