"""Training's reports (training/history.py): per-batch stats summed into per-epoch records, which a
checkpoint keeps as plain dicts and reads back."""

from __future__ import annotations

import dataclasses
import math

import pytest

from edge_asc.training.history import NO_IMPORTANCE, BatchStats, EpochRecord, EpochTotals


def test_an_epoch_record_is_the_mean_of_its_batches_in_batch_order():
    totals = EpochTotals()
    totals.add(0.5, BatchStats(triplets=10.0, semi_hard=0.2, importance=0.4))
    assert totals.mean_loss == 0.5
    totals.add(0.25, BatchStats(triplets=6.0, semi_hard=0.6, importance=0.6))
    record = totals.record(epoch=3, lr=1e-3, segments=40, seconds=2.0, feature_seconds=0.5)
    assert record == EpochRecord(3, (0.5 + 0.25) / 2, 8.0, (0.2 + 0.6) / 2, (0.4 + 0.6) / 2, 1e-3, 40, 2.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.loss = 0.0  # type: ignore[misc]


def test_a_variant_without_importance_records_nan_importance():
    totals = EpochTotals()
    totals.add(1.0, BatchStats(triplets=0.0, semi_hard=0.0, importance=NO_IMPORTANCE))
    assert math.isnan(totals.record(1, 1e-3, 8, 1.0, 0.1).importance)


def test_a_record_reads_back_from_the_dict_a_checkpoint_holds_with_the_keys_every_version_wrote():
    record = EpochRecord(1, -0.1, 9.5, 0.4, 0.45, 2.5e-4, 30, 0.06, 0.001)
    as_saved = record.to_dict()
    assert list(as_saved) == [
        "epoch", "loss", "triplets_per_batch", "semi_hard", "importance", "lr", "segments", "seconds", "feature_seconds",
    ]
    assert EpochRecord.from_dict(as_saved) == record


def test_a_record_missing_a_key_is_refused_naming_it():
    data = EpochRecord(1, -0.1, 9.5, 0.4, 0.45, 2.5e-4, 30, 0.06, 0.001).to_dict()
    del data["semi_hard"], data["lr"]
    with pytest.raises(ValueError, match="a history record lacks semi_hard, lr"):
        EpochRecord.from_dict(data)
