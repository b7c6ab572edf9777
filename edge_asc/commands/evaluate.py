"""edge-asc evaluate: train per fold and seed, score first-segment / first-k / all-segments accuracy, write a report."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger(__name__)

FLAG_FIELDS = (  # EvalConfig fields set by the flag of the same name
    "folds", "split_seed", "seeds", "leaky_seeds", "variants", "epochs", "k_max", "neighbours", "class_sizes", "class_draws",
    "class_epochs", "chunk_seconds", "jobs", "threads",
)
HELP = "evaluate the encoder variants and baselines on folds grouped by recording; writes report.md/json and figures"


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge_asc.evaluation.evaluate import EvalConfig  # numpy only

    d = EvalConfig()
    S = argparse.SUPPRESS  # absent flags do not override the file

    def csv_(values) -> str:
        return ",".join(str(v) for v in values)

    parser.add_argument("--data", type=Path, required=True, help="dataset folder (class folders + metadata.csv, or a DCASE layout)")
    parser.add_argument("--out", type=Path, default=Path("reports/amb13"), help="report folder (units/ inside it caches finished work)")
    parser.add_argument("--config", type=Path, default=None, help="YAML file with sections evaluate:, train: (augment: nested), model:, features: (flags override it)")
    parser.add_argument("--layout", default="auto", help="dataset layout: auto, folder, dcase2016, dcase2018")
    parser.add_argument("--folds", type=int, default=S, help=f"folds grouped by recording (default: {d.folds})")
    parser.add_argument("--split-seed", type=int, default=S, help=f"seed of the fold assignment (default: {d.split_seed})")
    parser.add_argument("--seeds", type=int, default=S, help=f"model seeds per fold (default: {d.seeds})")
    parser.add_argument("--variants", type=_names, default=S, help=f"comma-separated encoder variants (default: {csv_(d.variants)})")
    parser.add_argument("--no-baselines", action="store_true", default=S, help="skip the softmax and no-learning baselines")
    parser.add_argument("--epochs", type=int, default=S, help="training epochs per model (default: the trainer's default)")
    parser.add_argument("--leaky", action="store_true", default=S, help="also run the paper's random 80/20 scene split (reported as LEAKY)")
    parser.add_argument("--leaky-seeds", type=int, default=S, help=f"model seeds on the leaky split (default: {d.leaky_seeds})")
    parser.add_argument("--k-max", type=int, default=S, help=f"largest k of the first-k table (default: {d.k_max})")
    parser.add_argument("--neighbours", type=_ints, default=S, help=f"neighbour counts per segment decision, comma-separated (default: {csv_(d.neighbours)})")
    parser.add_argument("--class-sizes", type=_ints, default=S, help=f"class-count study sizes, comma-separated; '' for none (default: {csv_(d.class_sizes)})")
    parser.add_argument("--class-draws", type=int, default=S, help=f"random class subsets per size; 0: no class-count study (default: {d.class_draws})")
    parser.add_argument("--class-epochs", type=int, default=S, help="epochs in the class-count study (default: --epochs)")
    parser.add_argument("--chunk-seconds", type=float, default=S, help=f"scene length for long recordings (default: {d.chunk_seconds:g})")
    parser.add_argument("--jobs", type=int, default=S, help=f"training processes in parallel (default: {d.jobs})")
    parser.add_argument("--threads", type=int, default=S, help=f"torch/onnxruntime threads per process (default: {d.threads})")


def load_configs(path: Path | None, args: argparse.Namespace):
    """(EvalConfig, TrainConfig) from the YAML file's sections and the flags.

    Sections: ``evaluate:`` (EvalConfig) and the trainer's ``train:`` (augment: nested), ``model:`` and
    ``features:``, as ``edge-asc train --config`` reads them (so a run folder's config.yaml works here).
    """
    from edge_asc.config import ConfigError, from_dict, load_yaml, override
    from edge_asc.evaluation.evaluate import EvalConfig
    from edge_asc.commands.train import train_config_from_sections

    data = load_yaml(path) if path is not None else {}
    train = train_config_from_sections(data, path, extra=("evaluate",))
    try:
        evaluate = from_dict(EvalConfig, data.get("evaluate"), prefix="evaluate.")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    flags = {name: getattr(args, name) for name in FLAG_FIELDS if hasattr(args, name)}
    if getattr(args, "no_baselines", False):
        flags["baselines"] = False
    if getattr(args, "leaky", False):
        flags["leaky"] = True
    evaluate = override(evaluate, **flags)
    return evaluate, train


def run(args: argparse.Namespace) -> int:
    from edge_asc.training.datasets import DatasetError
    from edge_asc.evaluation.evaluate import run_evaluation

    config, train_config = load_configs(args.config, args)
    command = shlex.join(["edge-asc", *sys.argv[1:]])
    try:
        report = run_evaluation(args.data, args.out, config, train_config, command=command, layout=args.layout)
    except DatasetError as exc:
        log.error("%s", exc)
        return 2
    target = report.get("target")
    if target is not None:
        c = target["checks"]
        log.info(
            "default variant: first segment %.1f%%, all segments %.1f%%, ratio %.1f%%; target %s",
            100 * c["first_segment"]["value"], 100 * c["all_above_baselines"]["value"], 100 * (c["ratio"]["value"] or 0.0),
            "met" if target["met"] else "NOT met",
        )
    log.info("report: %s", args.out / "report.md")
    return 0
