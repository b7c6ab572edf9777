"""``edge-asc demo``: bundled real recordings through the daemon and its socket, true scene beside each event."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the whole pipeline on bundled real recordings and print the scene events as a subscriber sees them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="feed the audio as fast as possible instead of in real time")
    parser.add_argument("--k", type=int, default=3, metavar="N", help="segments per decision (300 ms each)")
    parser.add_argument("--model", type=Path, metavar="ONNX", help="encoder file (default: the shipped model)")
    parser.add_argument("--index", type=Path, metavar="DIR", help="index directory (default: the shipped index)")
    parser.add_argument("--json", action="store_true", help="print each event as a JSON line with its true scene")


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(realtime=not args.fast, k=args.k, model=args.model, index=args.index, as_json=args.json)
