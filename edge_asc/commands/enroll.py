"""``edge-asc enroll --label NAME FILE...`` / ``--source mic --seconds 20``: remember a place.

The audio's segment embeddings (never the audio) are added to the enrolled places beside the index
(edge_asc.runtime.enrol), with a distance threshold calibrated from the audio itself; the daemon and
``classify`` search them with the index. Exit codes: 0 enrolled; 2 refused (a bad label, empty, silent or
too short audio, a stale overlay, a failed write): the enrolled places are then unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from edge_asc.commands.common import MODEL_FLAGS, SUPPRESS, add_store_arguments, daemon_config

HELP = "remember a place: add audio of it (files or the microphone) to the enrolled places"

log = logging.getLogger(__name__)

MAX_SECONDS = 600.0  # the longest capture accepted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="*", metavar="FILE", help="sound files of the place (any rate, mixed to mono)")
    parser.add_argument("--label", required=True, help="the place's name (letters, digits, _ - .); a model label adds audio to that class")
    parser.add_argument("--source", metavar="SPEC", default=None, help="capture instead of files: mic | mic:NAME_OR_INDEX | file:PATH | stdin")
    parser.add_argument("--seconds", type=float, default=20.0, help="with --source: how much audio to capture")
    add_store_arguments(parser, model=True)
    parser.add_argument("--source-rate", dest="rate", type=int, metavar="HZ", default=SUPPRESS, help="stdin: the PCM's rate; mic: the rate to open the device at")


def run(args: argparse.Namespace) -> int:
    from edge_asc.contract import ArtifactError
    from edge_asc.daemon.sources import SourceError
    from edge_asc.dsp.audio_io import AudioFileError
    from edge_asc.runtime.encoder import Encoder
    from edge_asc.runtime.enrol import EnrolError, enrol

    if bool(args.files) == bool(args.source):
        log.error("give sound files or --source (mic, mic:DEVICE, file:PATH, stdin), not both and not neither")
        return 2
    if args.source and not 0 < args.seconds <= MAX_SECONDS:
        log.error("--seconds must be more than 0 and at most %g, got %g", MAX_SECONDS, args.seconds)
        return 2
    cfg = daemon_config(args, MODEL_FLAGS | {"rate": "audio.samplerate"})
    try:
        encoder = Encoder(cfg.model_path())
        audio = _capture(args, cfg, encoder) if args.source else _read(args.files, encoder)
        result = enrol(cfg.enrolled_path(), encoder, args.label, audio, encoder.meta.labels)
    except (ArtifactError, AudioFileError, SourceError, EnrolError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    note = f" ('{result.label}' is a model label: this is more audio of that class)" if result.model_label else ""
    print(
        f"enrolled {result.label}: {result.items} segments from {result.seconds:.1f} s of audio, "
        f"{result.total_items} in all, threshold {result.threshold:.4g}, in {cfg.enrolled_path()}{note}"
    )
    return 0


def _read(files: list[Path], encoder) -> list[tuple[str, object]]:
    from edge_asc.dsp.audio_io import read_audio

    return [(path.name, read_audio(path, encoder.meta.feature_config.sample_rate)) for path in files]


def _capture(args: argparse.Namespace, cfg, encoder) -> list[tuple[str, object]]:
    from edge_asc.daemon.capture import capture
    from edge_asc.daemon.config import SourceSpec
    from edge_asc.daemon.sources import make_source

    spec = SourceSpec.parse(args.source)
    rate = encoder.meta.feature_config.sample_rate
    source = make_source(spec, dataclasses.replace(cfg.audio, realtime=False), rate)

    def progress(done: float) -> None:
        sys.stderr.write(f"\rrecording {args.label} from {spec}: {done:5.1f} / {args.seconds:.1f} s")
        sys.stderr.flush()

    try:
        samples = capture(source, args.seconds, rate, progress)
    finally:
        sys.stderr.write("\n")
    return [(str(spec) if spec.kind != "file" else Path(spec.arg).name, samples)]
