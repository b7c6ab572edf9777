"""Trainer options that were screened (bench/quick_eval.py, reports/amb13/notes.md) and then removed from the trainer.

Each maps to its neutral value: the value that trains exactly as today's trainer does. Runs and evaluation units
recorded before the removal hold these keys; at their neutral value they describe today's training.
"""

from edge_asc.training.config import REMOVED_OPTIONS

# the same options as paths in to_dict(TrainConfig): train.augment.speed -> ("augment", "speed"), model.x -> ("model", "x")
REMOVED_NEUTRAL: dict[tuple[str, ...], object] = {
    tuple(key.split(".")[1:] if key.startswith("train.") else key.split(".")): value for key, value in REMOVED_OPTIONS.items()
}
