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
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from edge_asc.config import ConfigError, from_dict, load_yaml, override, to_dict
from edge_asc.dsp.features import FeatureConfig
from edge_asc.training.config import VARIANTS, ModelConfig, TrainConfig

log = logging.getLogger(__name__)

HELP = "train an encoder on labelled recordings (progress per epoch, checkpoints, --resume)"
SECTIONS = ("train", "model", "features")
LAYOUTS = ("auto", "folder", "dcase2016", "dcase2018")  # as edge_asc.training.datasets.LAYOUTS
CONFIG_NAME = "config.yaml"  # the effective settings, written beside the checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    t, m = TrainConfig(), ModelConfig()
    S = argparse.SUPPRESS  # absent flags do not override the file
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (class folders + metadata.csv, DCASE 2016/2017 or 2018 layout)")
    parser.add_argument("--out", type=Path, required=True, help="run folder; checkpoint.pt is rewritten there after every epoch")
    parser.add_argument("--config", type=Path, default=None, help="YAML file with sections train: (augment: nested), model:, features:")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto", help="dataset layout")
    parser.add_argument("--chunk-seconds", type=float, default=10.0, help="long files are cut into scenes of this length")
    parser.add_argument("--epochs", type=int, default=S, help=f"training epochs (default: {t.epochs})")
    parser.add_argument("--variant", choices=VARIANTS, default=S, help=f"encoder variant (default: {m.variant})")
    parser.add_argument("--hidden-size", type=int, default=S, help=f"LSTM units per direction (default: {m.hidden_size})")
    parser.add_argument("--batch-size", type=int, default=S, help=f"segments per batch (default: {t.batch_size})")
    parser.add_argument("--lr", type=float, default=S, help=f"Adam learning rate (default: {t.lr})")
    parser.add_argument("--margin", type=float, default=S, help=f"triplet margin (default: {t.margin})")
    parser.add_argument("--alpha", type=float, default=S, help=f"importance regulariser of the audio loss (default: {t.alpha})")
    parser.add_argument("--seed", type=int, default=S, help=f"random seed (default: {t.seed})")
    parser.add_argument("--threads", type=int, default=S, help=f"torch threads (default: {t.threads})")
    parser.add_argument("--no-augment", action="store_true", default=S, help="switch the waveform augmentation off (default: on)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--export", type=Path, default=None, help="also export the trained encoder to this ONNX file")


def config_from_file(path: Path) -> TrainConfig:
    """TrainConfig from a YAML file's train:/model:/features: sections; an unknown section is an error."""
    return train_config_from_sections(load_yaml(path), path)


def train_config_from_sections(data: dict[str, Any], path: Path | None, extra: tuple[str, ...] = ()) -> TrainConfig:
    """TrainConfig from a loaded config file's train: (augment: nested), model: and features: sections.

    ``extra`` names further sections the caller reads itself (evaluate:); any other section is an error.
    Errors name the file and the key.
    """
    accepted = extra + SECTIONS
    unknown = sorted(map(str, set(data) - set(accepted)))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}; accepted sections: {', '.join(accepted)}")
    train_section = dict(data.get("train") or {})
    for section in ("model", "features"):
        if section in train_section:
            raise ConfigError(f"{path}: give {section}: as a top-level section, not inside train:")
    try:
        config = from_dict(TrainConfig, train_section, prefix="train.")
        model = from_dict(ModelConfig, data.get("model"), prefix="model.")
        features = from_dict(FeatureConfig, data.get("features"), prefix="features.")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return dataclasses.replace(config, model=model, features=features)


def config_from_args(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """Apply the flags that were given to ``base``."""
    flag = lambda name: getattr(args, name, None)  # noqa: E731 - absent flags are None
    model = override(base.model, variant=flag("variant"), hidden_size=flag("hidden_size"))
    augment = override(base.augment, enabled=False if flag("no_augment") else None)
    config = override(
        base,
        epochs=flag("epochs"), batch_size=flag("batch_size"), lr=flag("lr"), margin=flag("margin"),
        alpha=flag("alpha"), seed=flag("seed"), threads=flag("threads"),
    )
    return dataclasses.replace(config, model=model, augment=augment)


def write_config(path: Path, config: TrainConfig) -> None:
    """The effective settings as a YAML file in the sections ``--config`` reads (atomically)."""
    data: dict[str, Any] = to_dict(config)
    sections = {"train": data, "model": data.pop("model"), "features": data.pop("features")}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(sections, f, sort_keys=False)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    from edge_asc.training.datasets import DatasetError, load_dataset
    from edge_asc.training.train import CHECKPOINT_NAME, load_checkpoint, train

    if args.resume:
        ckpt = args.out / CHECKPOINT_NAME
        if not ckpt.is_file():
            log.error("--resume: %s not found", ckpt)
            return 1
        base = config_from_file(args.config) if args.config else load_checkpoint(ckpt).config
    else:
        base = config_from_file(args.config) if args.config else TrainConfig()
    config = config_from_args(args, base)
    try:
        dataset = load_dataset(
            args.data, layout=args.layout, chunk_seconds=args.chunk_seconds,
            sample_rate=config.features.sample_rate, segment_seconds=config.features.segment_seconds,
        )
    except DatasetError as exc:
        log.error("%s", exc)
        return 1
    if not args.resume and (args.out / CHECKPOINT_NAME).exists():
        # refuse before writing anything: config.yaml describes the checkpoint beside it
        log.error("%s exists: resume it (--resume) or choose another output folder", args.out / CHECKPOINT_NAME)
        return 1
    if not args.resume:
        write_config(args.out / CONFIG_NAME, config)  # visible while a new run trains
    try:
        trained = train(config, dataset, out_dir=args.out, resume=args.resume)
    except FileExistsError as exc:
        log.error("%s", exc)
        return 1
    if args.resume:
        write_config(args.out / CONFIG_NAME, trained.config)  # only once the checkpoint accepted the settings
    log.info("checkpoint: %s (%d epochs)", trained.path, trained.epoch)
    if args.export is not None:
        from edge_asc.training.export import export_onnx

        export_onnx(trained, args.export)
    return 0
