"""Settings of the encoder, its augmentation and its training: frozen dataclasses, no torch.

They live apart from model.py / train.py so that ``edge-asc train --help`` can show the defaults
without importing torch (the CLI builds every sub-command's parser at start-up, the daemon's too).
A YAML file holds them in sections ``model:``, ``train:`` (with ``augment:`` nested) and ``features:``.
Only what a user chooses is here: the network's sizes follow from the feature settings and the labels
(``EncoderNet`` takes them as arguments), so a YAML file cannot set them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_asc.contract import VARIANTS
from edge_asc.dsp.features import FeatureConfig

LR_SCHEDULES = ("constant", "cosine")


# Trainer options of earlier versions (measured no better than the default, then removed; see
# reports/amb13/notes.md), with the value at which training was what it is now. Keys as in a config file.
REMOVED_OPTIONS: dict[str, Any] = {
    "train.balance_recordings": False,
    "train.cross_recording_positives": False,
    "train.ema_decay": 0.0,
    "train.aux_softmax": 0.0,
    "train.robust_normalization": False,
    "train.augment.pieces": 1,
    "train.augment.speed": 0.0,
    "train.augment.feature_noise": 0.0,
    "train.augment.feature_mask": 0,
    "model.input_clip": 0.0,
    "model.input_features": "all",
}


@dataclass(frozen=True)
class ModelConfig:
    """The encoder (paper section 3.2).

    variant: ``audio`` BiLSTM + attention + importance, embedding [h'; h''] (the paper's model);
    ``triplet`` the same without importance, embedding h'; ``noattn`` mean of the hidden states (no
    attention, no importance, as the paper's ablation); ``softmax`` embedding h' plus a linear classifier
    head used only in training (the supervised baseline of the evaluation).
    """

    variant: str = field(default="audio", metadata={"choices": VARIANTS})
    hidden_size: int = 64  # per LSTM direction; h' has 2 * hidden_size values
    dropout: float = 0.1  # on the LSTM outputs, training only
    normalize: bool = True  # L2-normalise h' (distances bounded, so the margin has a fixed scale)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.hidden_size < 1:
            raise ValueError(f"hidden_size must be positive, got {self.hidden_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def similarity_size(self) -> int:
        return 2 * self.hidden_size

    @property
    def has_importance(self) -> bool:
        return self.variant == "audio"

    @property
    def has_classifier(self) -> bool:
        """The softmax variant trains a classifier head (never exported) on h'."""
        return self.variant == "softmax"

    @property
    def embedding_size(self) -> int:
        return self.similarity_size + (1 if self.has_importance else 0)


@dataclass(frozen=True)
class AugmentConfig:
    """Waveform augmentations applied to every training scene, freshly drawn each epoch.

    They stand in for the recordings the model has not heard: other levels (gain), other microphones
    and rooms (equalisation), other mixtures of the same kind of place (mixing), other segment grids
    (time shift). A value of 0 switches an augmentation off.
    """

    enabled: bool = True
    gain_db: float = 6.0  # uniform gain in [-gain_db, +gain_db] dB
    eq_tilt_db: float = 6.0  # spectral tilt, uniform in [-eq_tilt_db, +eq_tilt_db] dB per 4 octaves
    eq_bands: int = 3  # random peaks/dips on a log-frequency axis
    eq_band_db: float = 6.0  # their gains, uniform in [-eq_band_db, +eq_band_db] dB
    mix_prob: float = 0.5  # probability of mixing in another scene of the same class
    mix_snr_db: tuple[float, float] = (0.0, 15.0)  # SNR of the scene against the mixed-in one
    time_shift: bool = True  # drop a random number (< one segment) of leading samples

    def __post_init__(self) -> None:
        if self.gain_db < 0 or self.eq_tilt_db < 0 or self.eq_band_db < 0 or self.eq_bands < 0:
            raise ValueError("gain_db, eq_tilt_db, eq_bands and eq_band_db must be >= 0")
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ValueError(f"mix_prob must be in [0, 1], got {self.mix_prob}")
        if len(self.mix_snr_db) != 2 or self.mix_snr_db[0] > self.mix_snr_db[1]:
            raise ValueError(f"mix_snr_db must be [low, high] with low <= high, got {list(self.mix_snr_db)}")

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(enabled=False)


@dataclass(frozen=True)
class TrainConfig:
    """How the encoder is trained: semi-hard triplet batches and the audio loss of paper section 3.3, Adam
    as in section 4.1, plus what the paper leaves open (learning-rate schedule, weight decay, gradient
    clipping, the triplet margin) and the waveform augmentation (``augment``)."""

    epochs: int = 30
    batch_size: int = 64
    classes_per_batch: int = 8  # a batch holds classes_per_batch classes x (batch_size / classes_per_batch) items
    lr: float = 1e-3  # Adam
    lr_schedule: str = field(default="cosine", metadata={"choices": LR_SCHEDULES})
    weight_decay: float = 1e-4  # Adam (L2) weight decay
    grad_clip: float = 5.0  # max gradient norm; 0 = off
    margin: float = 0.2  # triplet margin (eq. 6 has none: with semi-hard negatives it would always be 0)
    alpha: float = 0.1  # importance regulariser of the audio loss (eq. 7)
    seed: int = 0
    threads: int = 1  # torch intra-op threads
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    features: FeatureConfig = FeatureConfig()

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 4:
            raise ValueError(f"batch_size must be >= 4, got {self.batch_size}")
        if not 1 <= self.classes_per_batch <= self.batch_size // 2:
            raise ValueError("classes_per_batch must be in [1, batch_size / 2] so each class has >= 2 items")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.margin < 0 or self.alpha < 0:
            raise ValueError("lr must be > 0; weight_decay, grad_clip, margin and alpha >= 0")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
