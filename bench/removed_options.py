"""Trainer options that were screened (bench/quick_eval.py, reports/amb13/notes.md) and then removed from the trainer.

Each maps to its neutral value: the value that trains exactly as today's trainer does. Runs and evaluation units
recorded before the removal hold these keys; at their neutral value they describe today's training.
"""

REMOVED_NEUTRAL: dict[tuple[str, ...], object] = {
    ("balance_recordings",): False,
    ("cross_recording_positives",): False,
    ("ema_decay",): 0.0,
    ("aux_softmax",): 0.0,
    ("robust_normalization",): False,
    ("model", "input_clip"): 0.0,
    ("model", "input_features"): "all",
    ("augment", "pieces"): 1,
    ("augment", "speed"): 0.0,
    ("augment", "feature_noise"): 0.0,
    ("augment", "feature_mask"): 0,
}
