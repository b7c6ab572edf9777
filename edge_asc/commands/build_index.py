"""edge-asc build-index: embed every segment of a dataset with the ONNX encoder and index them.

    edge-asc build-index --model models/amb13.onnx --data ../shared/data/ambient13 --out index/amb13
                         [--M 16] [--ef-construction 200] [--ef 128] [--max-per-label N] [--config index.yaml]

Segments are embedded with the exported ONNX model (the daemon's code path), so the index holds what the
daemon computes. Settings come from the defaults, then the YAML file's ``index:`` section, then the flags.
The index directory is written atomically; an index already at --out is replaced only once the new one is
complete.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge_asc.commands.common import DATA_HELP, SUPPRESS, TRAIN_SECTIONS, add_cache_arguments, add_layout_arguments, cache_from_args
from edge_asc.config import apply_overrides, flag_overrides, read_sections
from edge_asc.training.build_index import IndexConfig

log = logging.getLogger(__name__)

HELP = "embed a dataset's segments with an ONNX encoder and build the hnswlib index the daemon searches"
FLAGS = {  # argparse destination -> IndexConfig key
    name: name for name in ("M", "ef_construction", "ef", "max_per_label", "seed", "batch_size", "threads")
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = IndexConfig()
    parser.add_argument("--model", type=Path, required=True, help="ONNX encoder written by edge-asc export")
    parser.add_argument("--data", type=Path, action="append", required=True, help=DATA_HELP)
    parser.add_argument("--out", type=Path, required=True, help="index directory to write (atomically; an index there is replaced)")
    parser.add_argument("--config", type=Path, default=None, help="YAML file with an index: section (keys as the flags, with underscores)")
    add_layout_arguments(parser)
    parser.add_argument("--M", dest="M", type=int, default=SUPPRESS, help=f"hnswlib links per node (default: {c.M})")
    parser.add_argument("--ef-construction", type=int, default=SUPPRESS, help=f"hnswlib build breadth (default: {c.ef_construction})")
    parser.add_argument("--ef", type=int, default=SUPPRESS, help=f"search breadth stored in the manifest (default: {c.ef})")
    parser.add_argument("--max-per-label", type=int, default=SUPPRESS, help="keep at most N segments per label, spread over its recordings (default: all)")
    parser.add_argument("--seed", type=int, default=SUPPRESS, help=f"seed of the --max-per-label draw (default: {c.seed})")
    parser.add_argument("--batch-size", type=int, default=SUPPRESS, help=f"segments per ONNX run (default: {c.batch_size})")
    parser.add_argument("--threads", type=int, default=SUPPRESS, help=f"ONNX Runtime and hnswlib threads (default: {c.threads})")
    add_cache_arguments(parser, "processes that compute the clean features into the cache (shared with edge-asc train)")


def config_from_args(args: argparse.Namespace) -> IndexConfig:
    """Defaults, then the file's index: section (the trainer's sections are passed over), then the flags."""
    base = read_sections(args.config, {"index": IndexConfig}, ignore=TRAIN_SECTIONS)["index"]
    return apply_overrides(base, flag_overrides(args, FLAGS))


def run(args: argparse.Namespace) -> int:
    from edge_asc.training.combine import load_datasets
    from edge_asc.training.layouts import DatasetError
    from edge_asc.contract import ArtifactError
    from edge_asc.runtime.encoder import Encoder
    from edge_asc.training.build_index import build_index_from_dataset
    from edge_asc.training.extract import ExtractionError

    config = config_from_args(args)
    try:
        encoder = Encoder(args.model, threads=config.threads)
    except ArtifactError as exc:
        log.error("%s", exc)
        return 1
    meta = encoder.meta
    log.info("encoder %s: %s variant, %d labels, embedding %d, sha256 %s", args.model, meta.variant, len(meta.labels), meta.embedding_size, meta.sha256[:12])
    try:
        dataset = load_datasets(
            args.data, layout=args.layout, chunk_seconds=args.chunk_seconds,
            sample_rate=meta.feature_config.sample_rate, segment_seconds=meta.feature_config.segment_seconds,
        )
        index = build_index_from_dataset(
            encoder, dataset, M=config.M, ef_construction=config.ef_construction, ef=config.ef,
            max_items_per_label=config.max_per_label, seed=config.seed, batch_size=config.batch_size, threads=config.threads,
            cache=cache_from_args(args), workers=args.extract_workers,
        )
    except (DatasetError, ExtractionError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    if dataset.skipped:
        log.warning("%d files skipped: %s", len(dataset.skipped), "; ".join(f"{p}: {why}" for p, why in dataset.skipped))
    try:
        index.save(args.out)
    except (ArtifactError, OSError) as exc:
        log.error("writing %s: %s", args.out, exc)
        return 1
    counts = ", ".join(f"{k} {v}" for k, v in index.counts().items())
    log.info("index %s: %d items (%s); M=%d ef_construction=%d ef=%d", args.out, len(index), counts, config.M, config.ef_construction, config.ef)
    return 0
