"""edge-asc train: labelled recordings -> encoder checkpoint (resumable), optionally exported to ONNX.

    edge-asc train --data ../shared/data/ambient13 --out runs/amb13 [--config train.yaml] [--epochs 40]
                   [--variant audio] [--resume] [--export models/amb13.onnx]

Settings come from the defaults, then the YAML file (sections ``train:`` with ``augment:`` nested,
``model:``, ``features:``), then the flags. With --resume the checkpoint's own settings are the base,
so a bare ``--resume`` continues the run as it was (``--epochs`` may extend it: the cosine learning-rate
schedule is then stretched over the new total, a warm restart rather than the schedule of a run started with
that many epochs). The data flags (``--data``, ``--layout``, ``--chunk-seconds``) are not stored: give the
same ones again; different scenes are refused ("the training data differ"). ``config.yaml`` beside the
checkpoint is written only once the settings are accepted, so a refused run leaves it as it was.

Run settings (not stored in the checkpoint, no effect on what is trained): ``--workers N`` trains with N
processes (DistributedDataParallel) by re-running this command under ``python -m torch.distributed.run
--standalone --nproc-per-node N``; on several machines run torchrun yourself (README: "Training at
scale"). ``--extract-workers`` processes compute the features into the cache (``--cache-dir``, default
$EDGE_ASC_CACHE or ~/.cache/edge-asc/features; ``--no-cache`` keeps them in memory); ``--device`` cpu
(default), cuda or auto.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from edge_asc.commands.common import DATA_HELP, SUPPRESS, add_cache_arguments, add_layout_arguments, cache_from_args, train_config_from_file
from edge_asc.config import apply_overrides, flag_overrides, to_dict
from edge_asc.fsutil import atomic_write_text
from edge_asc.contract import VARIANTS
from edge_asc.training.config import ModelConfig, TrainConfig

log = logging.getLogger(__name__)

HELP = "train an encoder on labelled recordings (progress per epoch, checkpoints, --resume)"
CONFIG_NAME = "config.yaml"  # the effective settings, written beside the checkpoint
FLAGS = {  # argparse destination -> TrainConfig key
    "epochs": "epochs", "variant": "model.variant", "hidden_size": "model.hidden_size", "batch_size": "batch_size",
    "lr": "lr", "margin": "margin", "alpha": "alpha", "seed": "seed", "threads": "threads", "augment": "augment.enabled",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    t, m = TrainConfig(), ModelConfig()
    parser.add_argument("--data", type=Path, action="append", required=True, help=DATA_HELP)
    parser.add_argument("--out", type=Path, required=True, help="run folder; checkpoint.pt is rewritten there after every epoch")
    parser.add_argument("--config", type=Path, default=None, help="YAML file with sections train: (augment: nested), model:, features:")
    add_layout_arguments(parser)
    parser.add_argument("--epochs", type=int, default=SUPPRESS, help=f"training epochs (default: {t.epochs})")
    parser.add_argument("--variant", choices=VARIANTS, default=SUPPRESS, help=f"encoder variant (default: {m.variant})")
    parser.add_argument("--hidden-size", type=int, default=SUPPRESS, help=f"LSTM units per direction (default: {m.hidden_size})")
    parser.add_argument("--batch-size", type=int, default=SUPPRESS, help=f"segments per batch (default: {t.batch_size})")
    parser.add_argument("--lr", type=float, default=SUPPRESS, help=f"Adam learning rate (default: {t.lr})")
    parser.add_argument("--margin", type=float, default=SUPPRESS, help=f"triplet margin (default: {t.margin})")
    parser.add_argument("--alpha", type=float, default=SUPPRESS, help=f"importance regulariser of the audio loss (default: {t.alpha})")
    parser.add_argument("--seed", type=int, default=SUPPRESS, help=f"random seed (default: {t.seed})")
    parser.add_argument("--threads", type=int, default=SUPPRESS, help=f"torch threads (default: {t.threads})")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=SUPPRESS, help="switch the waveform augmentation off (default: on)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--export", type=Path, default=None, help="also export the trained encoder to this ONNX file")
    add_run_arguments(parser)
    parser.set_defaults(_train_parser=parser)  # to re-run the command line under torchrun (--workers)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the run is carried out, not what is trained: not TrainConfig settings, not in the checkpoint."""
    from edge_asc.training.distributed import DEVICES

    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="training processes (DistributedDataParallel ranks) on this machine, started through torchrun")
    add_cache_arguments(parser, "processes that compute the features into the cache")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="train on the CPU (gloo between ranks) or CUDA GPUs (nccl)")


def torchrun_command(args: argparse.Namespace) -> list[str]:
    """This command line, without --workers, under ``python -m torch.distributed.run`` with ``args.workers`` ranks."""
    line = ["--log-level", args.log_level] if getattr(args, "log_level", None) else []
    line.append("train")
    for action in args._train_parser._actions:
        if not action.option_strings or action.dest in ("help", "workers") or action.dest not in vars(args):
            continue  # positional, --help, --workers, or an override flag that was not given (SUPPRESS)
        value, flag = getattr(args, action.dest), max(action.option_strings, key=len)
        if action.nargs == 0:  # store_true / store_false: given when it differs from the default
            line += [flag] if value != action.default else []
        elif isinstance(action, argparse._AppendAction):  # --data A --data B: the flag once per value
            line += [part for item in value or () for part in (flag, str(item))]
        elif value is not None and (action.default is argparse.SUPPRESS or value != action.default):
            line += [flag, str(value)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.workers), "-m", "edge_asc", *line]


def write_config(path: Path, config: TrainConfig) -> None:
    """The effective settings as a YAML file in the sections ``--config`` reads (atomically)."""
    data: dict[str, Any] = to_dict(config)
    sections = {"train": data, "model": data.pop("model"), "features": data.pop("features")}
    atomic_write_text(path, yaml.safe_dump(sections, sort_keys=False))


def run(args: argparse.Namespace) -> int:
    from edge_asc.training import distributed

    if args.workers < 1 or args.extract_workers < 1:
        log.error("--workers and --extract-workers must be at least 1")
        return 2
    if args.workers > 1:
        if distributed.under_torchrun():
            log.error("--workers: this process already runs under torchrun, which starts the ranks: leave --workers out")
            return 2
        command = torchrun_command(args)
        log.info("starting %d training processes: %s", args.workers, " ".join(command))
        return subprocess.call(command)
    try:
        return train_here(args)
    finally:
        distributed.leave()


def train_here(args: argparse.Namespace) -> int:
    """The training itself, in this process (one rank of a torchrun, or the only one)."""
    from edge_asc.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from edge_asc.training.combine import load_datasets
    from edge_asc.training.extract import ExtractionError
    from edge_asc.training.layouts import DatasetError
    from edge_asc.training.train import train

    main = int(os.environ.get("RANK", "0")) == 0  # rank 0 writes the run folder's files
    if args.resume:
        ckpt = args.out / CHECKPOINT_NAME
        if not ckpt.is_file():
            log.error("--resume: %s not found", ckpt)
            return 1
        base = train_config_from_file(args.config) if args.config else load_checkpoint(ckpt).config
    else:
        base = train_config_from_file(args.config)
    config = apply_overrides(base, flag_overrides(args, FLAGS))
    try:
        dataset = load_datasets(
            args.data, layout=args.layout, chunk_seconds=args.chunk_seconds,
            sample_rate=config.features.sample_rate, segment_seconds=config.features.segment_seconds,
        )
    except DatasetError as exc:
        log.error("%s", exc)
        return 1
    if len(dataset.labels) < 2:  # triplets need another class for their negatives
        log.error("%s: training needs at least two classes, found %d (%s)", " + ".join(map(str, args.data)), len(dataset.labels), ", ".join(dataset.labels) or "none")
        return 2
    if not args.resume and (args.out / CHECKPOINT_NAME).exists():
        # refuse before writing anything: config.yaml describes the checkpoint beside it
        log.error("%s exists: resume it (--resume) or choose another output folder", args.out / CHECKPOINT_NAME)
        return 1
    if not args.resume and main:
        write_config(args.out / CONFIG_NAME, config)  # visible while a new run trains
    cache = cache_from_args(args)
    try:
        trained = train(config, dataset, out_dir=args.out, resume=args.resume, cache=cache, workers=args.extract_workers, device=args.device)
    except FileExistsError as exc:
        log.error("%s", exc)
        return 1
    except ValueError as exc:  # data the trainer cannot use (e.g. a class with a single segment)
        log.error("%s: %s", " + ".join(map(str, args.data)), exc)
        return 2
    except ExtractionError as exc:  # every other scene's features are cached: a rerun starts from them
        log.error("%s", exc)
        return 1
    if not main:
        return 0
    if args.resume:
        write_config(args.out / CONFIG_NAME, trained.config)  # only once the checkpoint accepted the settings
    log.info("checkpoint: %s (%d epochs)", trained.path, trained.epoch)
    if args.export is not None:
        from edge_asc.training.export import export_onnx

        export_onnx(trained, args.export)
    return 0
