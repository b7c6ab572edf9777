"""``edge-asc forget --label NAME``: remove an enrolled place (every enrolment of that label).

Works on enrolled places made with another encoder too, which is how stale enrolments are cleared.
Exit codes: 0 removed; 2 no such place, or the enrolled places could not be rewritten (then unchanged).
"""

from __future__ import annotations

import argparse
import logging

from edge_asc.commands.common import MODEL_FLAGS, add_store_arguments, daemon_config

HELP = "remove an enrolled place"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", required=True, action="append", help="the place to remove (repeat for several)")
    add_store_arguments(parser, model=True)


def run(args: argparse.Namespace) -> int:
    from edge_asc.runtime.enrol import EnrolError, forget

    cfg = daemon_config(args, MODEL_FLAGS)
    directory = cfg.enrolled_path()
    for label in args.label:
        try:
            removed = forget(directory, label)
        except EnrolError as exc:
            log.error("%s", exc)
            return 2
        print(f"forgot {label}: {removed} items removed from {directory}")
    return 0
