"""What several commands share: the dataset arguments and the trainer's config file sections.

Every command reads its settings the same way (edge_asc.config): defaults, then the YAML file's sections,
then the flags that were given. Flags that override a setting are declared with ``default=SUPPRESS``
and listed in the command's flag table (argparse destination -> dotted key).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping

from edge_asc.config import ConfigError, flag_overrides, load_yaml, sections_from
from edge_asc.daemon.config import DaemonConfig, DecisionConfig, load_config
from edge_asc.dsp.features import FeatureConfig
from edge_asc.runtime.decision import MODES
from edge_asc.training.config import ModelConfig, TrainConfig
from edge_asc.training.datasets import CHUNK_SECONDS, LAYOUTS

SUPPRESS = argparse.SUPPRESS  # an override flag that was not given leaves no attribute
TRAIN_SECTIONS = {"train": TrainConfig, "model": ModelConfig, "features": FeatureConfig}
DATA_HELP = (
    "dataset folder (class folders + metadata.csv, DCASE 2016/2017 or 2018 layout); give --data again to combine "
    "several (labels united, recording ids prefixed with the folder's name)"
)


def add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    """--layout and --chunk-seconds: how a dataset folder is read (beside --data)."""
    parser.add_argument("--layout", choices=LAYOUTS, default="auto", help="dataset layout")
    parser.add_argument("--chunk-seconds", type=float, default=CHUNK_SECONDS, help="long files are cut into scenes of this length")


def train_config_from_file(path: Path | None, ignore: Iterable[str] = ()) -> TrainConfig:
    """TrainConfig from a config file's ``train:`` (``augment:`` nested), ``model:`` and ``features:`` sections.

    ``ignore`` names sections that another part of the command reads (``evaluate:``); any other section
    is an error naming it. ``model:`` and ``features:`` are top-level sections, as ``config.yaml`` in a
    run folder writes them.
    """
    return train_config_from_sections(load_yaml(path) if path is not None else {}, path, ignore)


def train_config_from_sections(data: Mapping[str, Any], path: Path | None, ignore: Iterable[str] = ()) -> TrainConfig:
    """``train_config_from_file`` of a file already read with ``load_yaml``."""
    train_section = data.get("train") or {}
    for section in ("model", "features"):
        if isinstance(train_section, dict) and section in train_section:
            raise ConfigError(f"{path}: give {section}: as a top-level section, not inside train:")
    sections = sections_from(data, TRAIN_SECTIONS, ignore, path)
    return dataclasses.replace(sections["train"], model=sections["model"], features=sections["features"])


# --- the daemon's settings, as run and classify take them ----------------------------------------------

ARTIFACT_FLAGS = {
    "model": "model", "index": "index", "enrolled": "enrolled", "k": "decision.k", "k_max": "decision.k_max", "mode": "decision.mode",
    "enrolled_only": "decision.enrolled_only",
}
MODEL_FLAGS = {"model": "model", "index": "index", "enrolled": "enrolled"}  # enroll, labels, forget


def add_artifact_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --k, --mode, --model, --index: the daemon config file and the flags over it."""
    d = DecisionConfig()
    parser.add_argument("--config", type=Path, metavar="YAML", default=None, help="daemon config file: its model, index, decision and inference settings (edge-asc run --dump-config writes one)")
    parser.add_argument("--k", type=int, metavar="N", default=SUPPRESS, help=f"segments per decision (config decision.k, default {d.k})")
    parser.add_argument("--mode", choices=MODES, default=SUPPRESS, help=f"a decision every k segments, every segment over the last k, or as soon as the vote is safe (config decision.mode, default {d.mode})")
    parser.add_argument("--k-max", type=int, metavar="N", default=SUPPRESS, help=f"adaptive mode: the most segments per decision (config decision.k_max, default {d.k_max})")
    parser.add_argument("--model", type=Path, metavar="ONNX", default=SUPPRESS, help="encoder file (config model; default: the installed default model)")
    add_store_arguments(parser)
    parser.add_argument("--enrolled-only", action="store_true", default=SUPPRESS, help="only enrolled places are candidates; audio far from all of them is 'unknown' (config decision.enrolled_only)")


def add_store_arguments(parser: argparse.ArgumentParser, model: bool = False) -> None:
    """--index and --enrolled (and --config, --model for the enrolment commands): which stores to use."""
    if model:
        parser.add_argument("--config", type=Path, metavar="YAML", default=None, help="daemon config file: its model, index and enrolled settings")
        parser.add_argument("--model", type=Path, metavar="ONNX", default=SUPPRESS, help="encoder file (config model; default: the installed default model)")
    parser.add_argument("--index", type=Path, metavar="DIR", default=SUPPRESS, help="index directory (config index; default: the installed default index)")
    parser.add_argument("--enrolled", type=Path, metavar="DIR", default=SUPPRESS, help="enrolled places directory (config enrolled; default: $EDGE_ASC_ENROLLED, /var/lib/edge-asc/enrolled if writable, else ~/.local/share/edge-asc/enrolled)")


def load_runtime(cfg: DaemonConfig):
    """The encoder and the index with the enrolled places beside it, as the config says; raises
    ArtifactError (a missing, mismatched or stale store) or ValueError (enrolled_only with nothing enrolled)."""
    from edge_asc.runtime.pipeline import load_artifacts

    dc = cfg.decision
    return load_artifacts(
        cfg.model_path(), cfg.index_path(), cfg.inference.threads, cfg.inference.ef,
        enrolled_path=cfg.enrolled_path(), enrolled_only=dc.enrolled_only, unknown_threshold=dc.unknown_threshold,
        unknown_ratio=dc.unknown_ratio, silence=dc.silence_dbfs is not None,
    )


def daemon_config(args: argparse.Namespace, flags: dict[str, str]) -> DaemonConfig:
    """The daemon config file named by --config (or the defaults), then the given flags in ``flags``."""
    return load_config(args.config, flag_overrides(args, flags))


# --- the feature cache, as train, build-index and evaluate take it ---------------------------------------


def add_cache_arguments(parser: argparse.ArgumentParser, workers_help: str | None) -> None:
    """--cache-dir, --no-cache and (given its help) --extract-workers: where and by how many processes
    features are computed. Run settings: they change how fast a command goes, never what it computes."""
    from edge_asc.training.feature_cache import FeatureCache

    if workers_help is not None:
        from edge_asc.training.distributed import default_extract_workers

        parser.add_argument("--extract-workers", type=int, default=default_extract_workers(), metavar="N",
                            help=f"{workers_help} (default: this machine's cores over its training ranks, here {default_extract_workers()})")
    parser.add_argument("--cache-dir", type=Path, default=FeatureCache.default_dir(), metavar="DIR",
                        help="feature cache (environment EDGE_ASC_CACHE overrides the default)")
    parser.add_argument("--no-cache", action="store_true", help="keep the features in memory only, no cache files")


def cache_from_args(args: argparse.Namespace):
    """The FeatureCache the flags of add_cache_arguments name."""
    from edge_asc.training.feature_cache import FeatureCache

    return FeatureCache.disabled() if args.no_cache else FeatureCache.open(args.cache_dir)
