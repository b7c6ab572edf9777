"""``edge-asc devices``: the audio input devices PortAudio sees (for ``--source mic:NAME_OR_INDEX``)."""

from __future__ import annotations

import argparse
import logging

HELP = "list audio input devices (index, name, channels, default rate; * marks the default)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per device instead of a table")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from edge_asc.daemon.mic import list_input_devices

    try:
        devices = list_input_devices()
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        log.error("cannot list audio devices: %s (is PortAudio installed? apt install libportaudio2)", exc)
        return 1
    if not devices:  # the same exit status with or without --json
        log.warning("no audio input device found")
        return 1
    if args.json:
        for d in devices:
            print(json.dumps(dataclasses.asdict(d)))
        return 0
    width = max(len(d.name) for d in devices)
    print(f"  {'index':>5}  {'name':<{width}}  {'channels':>8}  {'rate':>7}  host API")
    for d in devices:
        mark = "*" if d.is_default else " "
        print(f"{mark} {d.index:>5}  {d.name:<{width}}  {d.channels:>8}  {d.default_rate:>7.0f}  {d.hostapi}")
    print("(* = default input; use --source mic:INDEX or mic:NAME with edge-asc run)")
    return 0
