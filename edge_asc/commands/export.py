"""edge-asc export: a training run's checkpoint -> the ONNX encoder the daemon and the index use.

    edge-asc export runs/amb13 --out models/amb13.onnx
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge_asc.contract import MIN_OPSET, OPSET

log = logging.getLogger(__name__)

HELP = "export a trained encoder (run folder or checkpoint.pt) to ONNX with its labels and feature settings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run folder written by edge-asc train, or its checkpoint.pt")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write (atomically)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset ({MIN_OPSET} or later)")


def run(args: argparse.Namespace) -> int:
    from edge_asc.training.export import export_onnx

    try:
        export_onnx(args.run_dir, args.out, opset=args.opset)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    return 0
