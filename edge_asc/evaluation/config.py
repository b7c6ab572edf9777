"""What ``edge-asc evaluate`` runs: its settings (``EvalConfig``, YAML section ``evaluate:``) and the names of
what it compares (methods, protocols). No torch: the CLI reads it to show its defaults at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_asc.contract import DEFAULT_EF, DEFAULT_EF_CONSTRUCTION, DEFAULT_M
from edge_asc.evaluation.scoring import first_rule
from edge_asc.training.datasets import CHUNK_SECONDS

PRIMARY = "audio"  # the default variant: the one the headline, the k table and the confusion matrix use
MODEL_VARIANTS = ("audio", "triplet", "noattn")
SOFTMAX = "softmax"  # the task method that trains the softmax baseline; it yields the next two rows
SOFTMAX_NN = "softmax-nn"  # the softmax-trained encoder, 1-NN on its embedding
SOFTMAX_HEAD = "softmax-head"  # the softmax-trained encoder, its own classifier head
NO_LEARNING = "nolearn"  # standardised mean/std of the 52 features + exact nearest neighbour
BASELINE_ROWS = (SOFTMAX_NN, SOFTMAX_HEAD, NO_LEARNING)
ROW_ORDER = MODEL_VARIANTS + BASELINE_ROWS  # the order of a report's rows
METHOD_TITLES = {
    "audio": "audio loss (paper)",
    "triplet": "triplet loss (eq. 6)",
    "noattn": "no attention",
    SOFTMAX_NN: "softmax-trained encoder, 1-NN",
    SOFTMAX_HEAD: "softmax-trained encoder, own head",
    NO_LEARNING: "no learning: feature mean/std, 1-NN",
}

GROUPED = "grouped"  # folds grouped by recording (the result)
LEAKY = "leaky"  # the paper's random split of scenes (a comparison)
CLASSES = "classes"  # the class-count study: random class subsets of the grouped folds


def row_rank(row: str) -> int:
    """Position of a result row in a report (unknown rows last)."""
    return ROW_ORDER.index(row) if row in ROW_ORDER else len(ROW_ORDER)


@dataclass(frozen=True)
class EvalConfig:
    """What ``edge-asc evaluate`` runs (YAML section ``evaluate:``; the trainer's settings are ``train:``)."""

    folds: int = 3  # folds grouped by recording (official folds of a DCASE layout take precedence)
    split_seed: int = 0  # the fold assignment; model seeds vary, folds stay fixed
    seeds: int = 3  # model seeds 0 .. seeds-1 per fold
    variants: tuple[str, ...] = MODEL_VARIANTS  # encoders trained with the triplet-style losses
    baselines: bool = True  # softmax encoder (head and 1-NN) and the no-learning 1-NN
    epochs: int | None = None  # None: the trainer's default
    leaky: bool = False  # also run the paper's random 80/20 scene split (reported as LEAKY)
    leaky_test_fraction: float = 0.2
    leaky_seeds: int = 1  # model seeds on the leaky split (a comparison with the paper's protocol, not the result)
    k_max: int = 10  # first-k decisions for k = 1 .. k_max
    neighbours: tuple[int, ...] = (1, 5)  # nearest neighbours per segment decision (1 = the paper)
    class_sizes: tuple[int, ...] = (2, 4, 7, 10)  # class-count study (sizes < number of classes)
    class_draws: int = 3  # random class subsets per size
    class_epochs: int | None = None  # epochs in the class-count study (None: epochs)
    chunk_seconds: float = CHUNK_SECONDS  # scene length for long recordings
    jobs: int = 1  # training processes in parallel (each uses ``threads`` torch threads)
    threads: int = 1
    index_m: int = DEFAULT_M  # hnswlib settings of each fold's index (the daemon's defaults)
    index_ef_construction: int = DEFAULT_EF_CONSTRUCTION
    index_ef: int = DEFAULT_EF

    def __post_init__(self) -> None:
        if self.folds < 2 or self.seeds < 1 or self.leaky_seeds < 1 or self.k_max < 1 or self.class_draws < 0:
            raise ValueError("folds must be >= 2, seeds and leaky_seeds >= 1, k_max >= 1 and class_draws >= 0")
        bad = [v for v in self.variants if v not in MODEL_VARIANTS]
        if bad:
            raise ValueError(f"variants: {bad[0]!r} is not accepted; accepted values: {', '.join(MODEL_VARIANTS)}")
        if not self.neighbours or any(n < 1 for n in self.neighbours) or len(set(self.neighbours)) != len(self.neighbours):
            raise ValueError(f"neighbours must be distinct positive counts, got {list(self.neighbours)}")
        if any(n < 2 for n in self.class_sizes):
            raise ValueError(f"class_sizes must be >= 2, got {list(self.class_sizes)}")
        if not 0.0 < self.leaky_test_fraction < 1.0:
            raise ValueError(f"leaky_test_fraction must be in (0, 1), got {self.leaky_test_fraction}")
        if self.jobs < 1 or self.threads < 1:
            raise ValueError("jobs and threads must be >= 1")
        for name in ("epochs", "class_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    @property
    def first_rule(self) -> str:
        """The segment rule the headline, the per-class table and the class study use (``scoring.first_rule``)."""
        return first_rule(self.neighbours)
