"""edge-asc evaluate: train per fold and seed, score first-segment / first-k / all-segments accuracy, write a report.

The work is edge_asc.evaluation (evaluate.run_evaluation); this module reads the settings and logs the headline
(the default variant's accuracies; how they compare with a target is the report's reading, its notes.md).

``--out`` is required, and a report already there is replaced only when it was made from the same data (its
report.json records the dataset's sha256): a report of other data, or one that cannot be read, is refused
with one line naming it unless ``--force``. A shipped report is never silently overwritten by another run.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from edge_asc.commands.common import SUPPRESS, TRAIN_SECTIONS, add_cache_arguments, cache_from_args, train_config_from_sections
from edge_asc.config import apply_overrides, flag_overrides, load_yaml, sections_from
from edge_asc.evaluation.config import EvalConfig
from edge_asc.training.config import TrainConfig
from edge_asc.training.datasets import LAYOUTS

log = logging.getLogger(__name__)

FLAGS = {  # argparse destination -> EvalConfig key (the same names)
    name: name
    for name in (
        "folds", "split_seed", "seeds", "leaky_seeds", "variants", "baselines", "leaky", "epochs", "k_max", "neighbours",
        "class_sizes", "class_draws", "class_epochs", "chunk_seconds", "jobs", "threads",
    )
}

HELP = "evaluate the encoder variants and baselines on folds grouped by recording; writes report.md/json and figures"


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = EvalConfig()

    def csv_(values) -> str:
        return ",".join(str(v) for v in values)

    parser.add_argument("--data", type=Path, required=True, help="dataset folder (class folders + metadata.csv, or a DCASE layout)")
    parser.add_argument("--out", type=Path, required=True, help="report folder (units/ inside it caches finished work); a report of other data there is refused unless --force")
    parser.add_argument("--force", action="store_true", help="replace a report in --out made from other data")
    parser.add_argument("--config", type=Path, default=None, help="YAML file with sections evaluate:, train: (augment: nested), model:, features: (flags override it)")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto", help="dataset layout")
    parser.add_argument("--folds", type=int, default=SUPPRESS, help=f"folds grouped by recording (default: {d.folds})")
    parser.add_argument("--split-seed", type=int, default=SUPPRESS, help=f"seed of the fold assignment (default: {d.split_seed})")
    parser.add_argument("--seeds", type=int, default=SUPPRESS, help=f"model seeds per fold (default: {d.seeds})")
    parser.add_argument("--variants", type=_names, default=SUPPRESS, help=f"comma-separated encoder variants (default: {csv_(d.variants)})")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false", default=SUPPRESS, help="skip the softmax and no-learning baselines")
    parser.add_argument("--epochs", type=int, default=SUPPRESS, help="training epochs per model (default: the trainer's default)")
    parser.add_argument("--leaky", action="store_true", default=SUPPRESS, help="also run the paper's random 80/20 scene split (reported as LEAKY)")
    parser.add_argument("--leaky-seeds", type=int, default=SUPPRESS, help=f"model seeds on the leaky split (default: {d.leaky_seeds})")
    parser.add_argument("--k-max", type=int, default=SUPPRESS, help=f"largest k of the first-k table (default: {d.k_max})")
    parser.add_argument("--neighbours", type=_ints, default=SUPPRESS, help=f"neighbour counts per segment decision, comma-separated (default: {csv_(d.neighbours)})")
    parser.add_argument("--class-sizes", type=_ints, default=SUPPRESS, help=f"class-count study sizes, comma-separated; '' for none (default: {csv_(d.class_sizes)})")
    parser.add_argument("--class-draws", type=int, default=SUPPRESS, help=f"random class subsets per size; 0: no class-count study (default: {d.class_draws})")
    parser.add_argument("--class-epochs", type=int, default=SUPPRESS, help="epochs in the class-count study (default: --epochs)")
    parser.add_argument("--chunk-seconds", type=float, default=SUPPRESS, help=f"scene length for long recordings (default: {d.chunk_seconds:g})")
    parser.add_argument("--jobs", type=int, default=SUPPRESS, help=f"training processes in parallel (default: {d.jobs})")
    parser.add_argument("--threads", type=int, default=SUPPRESS, help=f"torch/onnxruntime threads per process (default: {d.threads})")
    add_cache_arguments(parser, None)  # features are extracted by the --jobs processes


def load_configs(path: Path | None, args: argparse.Namespace) -> tuple[EvalConfig, TrainConfig]:
    """(EvalConfig, TrainConfig): defaults, then the file, then the flags.

    Sections: ``evaluate:`` (EvalConfig) and the trainer's ``train:`` (augment: nested), ``model:`` and
    ``features:``, as ``edge-asc train --config`` reads them (so a run folder's config.yaml works here).
    """
    data = load_yaml(path) if path is not None else {}
    train = train_config_from_sections(data, path, ignore=("evaluate",))
    evaluate = sections_from(data, {"evaluate": EvalConfig}, ignore=TRAIN_SECTIONS, path=path)["evaluate"]
    return apply_overrides(evaluate, flag_overrides(args, FLAGS)), train


def refuse_other_report(out: Path, data: Path, layout: str, config: EvalConfig, train_config: TrainConfig) -> str | None:
    """One line naming the report in ``out`` when it was made from other data than ``data`` (or cannot be read); else None."""
    from edge_asc.evaluation.plan import dataset_sha256
    from edge_asc.evaluation.report import REPORT_JSON, recorded_data_sha256
    from edge_asc.training.datasets import load_dataset

    existing = out / REPORT_JSON
    if not existing.exists():
        return None
    recorded = recorded_data_sha256(existing)
    fc = train_config.features
    dataset = load_dataset(data, layout=layout, chunk_seconds=config.chunk_seconds, sample_rate=fc.sample_rate, segment_seconds=fc.segment_seconds)
    current, _ = dataset_sha256(dataset)
    if recorded == current:
        return None
    what = "records no readable dataset sha256" if recorded is None else f"was made from other data (sha256 {recorded[:12]}..., not {current[:12]}...)"
    return f"{existing} {what}: refusing to overwrite it; choose another --out, or add --force to replace it"


def run(args: argparse.Namespace) -> int:
    from edge_asc.evaluation.evaluate import run_evaluation
    from edge_asc.training.extract import ExtractionError
    from edge_asc.training.layouts import DatasetError

    config, train_config = load_configs(args.config, args)
    command = shlex.join(["edge-asc", *sys.argv[1:]])
    try:
        refusal = None if args.force else refuse_other_report(args.out, args.data, args.layout, config, train_config)
        if refusal is not None:
            log.error("%s", refusal)
            return 2
        report = run_evaluation(args.data, args.out, config, train_config, command=command, layout=args.layout, cache=cache_from_args(args))
    except (DatasetError, ExtractionError) as exc:
        log.error("%s", exc)
        return 2
    main = report.headline()
    if main is not None:
        log.info(
            "default variant (%s): first segment %.1f%%, all segments %.1f%%, ratio first/all %s",
            report.primary, 100 * main.first.mean, 100 * main.all.mean, "-" if main.ratio is None else f"{100 * main.ratio:.1f}%",
        )
    log.info("report: %s", args.out / "report.md")
    return 0
