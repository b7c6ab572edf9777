"""What training reports: ``BatchStats`` per batch (from ``batch_loss``), ``EpochRecord`` per epoch (a
``TrainedModel``'s ``history``, written into its checkpoint), and ``EpochTotals`` that sums the one into
the other.

A checkpoint holds its history as a list of plain dicts (``EpochRecord.to_dict``), as every version wrote
it, so that any version reads any other's; ``EpochRecord.from_dict`` reads one back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

NO_IMPORTANCE = float("nan")  # the importance reported by the variants without h''


@dataclass(frozen=True)
class BatchStats:
    """A few numbers about one training batch, besides its loss."""

    triplets: float  # triplets mined (0 for the softmax variant)
    semi_hard: float  # fraction of them with a semi-hard negative
    importance: float  # mean h'' over the batch (the audio variant), else NaN


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training, as the trainer logs it and a checkpoint keeps it."""

    epoch: int  # 1-based
    loss: float  # mean over the epoch's batches
    triplets_per_batch: float
    semi_hard: float  # mean fraction of semi-hard triplets
    importance: float  # mean h'' (the audio variant), else NaN
    lr: float  # the learning rate of the epoch's last batch
    segments: int  # segments drawn this epoch
    seconds: float  # wall time of the epoch
    feature_seconds: float  # of which drawing (augmenting, extracting) the features

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's form: a plain dict keyed by field name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EpochRecord":
        """A checkpoint's record (any version's: they all wrote these keys); a missing key is a ValueError naming it."""
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"a history record lacks {', '.join(missing)}")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


class EpochTotals:
    """Running sums of the batches' losses and stats over one epoch (added in batch order, as ever, so that
    the means, and the checkpoints that hold them, do not change)."""

    def __init__(self) -> None:
        self.batches = 0
        self.loss = 0.0
        self.triplets = 0.0
        self.semi_hard = 0.0
        self.importance = 0.0

    def add(self, loss: float, stats: BatchStats) -> None:
        self.batches += 1
        self.loss += loss
        self.triplets += stats.triplets
        self.semi_hard += stats.semi_hard
        self.importance += stats.importance

    @property
    def mean_loss(self) -> float:
        return self.loss / max(1, self.batches)

    def record(self, epoch: int, lr: float, segments: int, seconds: float, feature_seconds: float) -> EpochRecord:
        n = self.batches
        return EpochRecord(
            epoch=epoch,
            loss=self.loss / n,
            triplets_per_batch=self.triplets / n,
            semi_hard=self.semi_hard / n,
            importance=self.importance / n,
            lr=lr,
            segments=segments,
            seconds=seconds,
            feature_seconds=feature_seconds,
        )
