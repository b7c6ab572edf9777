"""``edge-asc classify FILE``: the daemon's decisions for a sound file, offline (no socket).

The file goes through the same Pipeline as ``edge-asc run --source file:FILE``, so both give the same
decisions, with the enrolled places (``--enrolled``, ``--enrolled-only``) searched beside the index. ``--json``
prints one line per decision in the schema of the socket's ``scene`` event, evidence included.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edge_asc.commands.common import ARTIFACT_FLAGS, add_artifact_arguments, daemon_config, load_runtime

HELP = "classify a sound file offline: the decisions the daemon would publish for it"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="sound file (wav, flac, ogg...; any rate, mixed to mono)")
    parser.add_argument("--json", action="store_true", help="one JSON scene event per line (as on the daemon's socket)")
    add_artifact_arguments(parser)
    parser.add_argument("--segments", action="store_true", help="also print each segment's label (not with --json)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_asc.dsp.audio_io import AudioFileError
    from edge_asc.runtime.decision import DecisionPolicy, vote
    from edge_asc.contract import ArtifactError
    from edge_asc.runtime.pipeline import Pipeline

    cfg = daemon_config(args, ARTIFACT_FLAGS)
    try:
        encoder, index = load_runtime(cfg)
    except (ArtifactError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    labels = tuple(index.labels)  # the model's, then enrolled places (and unknown with --enrolled-only)
    dc = cfg.decision
    try:
        pipeline = Pipeline(encoder, index, DecisionPolicy(len(labels), dc.k, dc.mode, dc.tie_break, dc.k_max), dc.neighbours,
                            silence_dbfs=dc.silence_dbfs)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        seg_labels, seg_dists, decisions = _classify(args, pipeline, labels, encoder.meta.feature_config.sample_rate)
    except AudioFileError as exc:
        log.error("%s", exc)
        return 2
    except BrokenPipeError:  # the reader went away (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    if not seg_labels:
        log.error("%s: shorter than one %.1f s segment; no decision", args.file, encoder.meta.feature_config.segment_seconds)
        return 1
    if decisions == 0:  # k longer than the file: say so rather than print nothing
        seconds = encoder.meta.feature_config.segment_seconds
        log.warning(
            "%s: %d segments (%.1f s) are fewer than k=%d (%.1f s): no decision; use a smaller --k",
            args.file, len(seg_labels), len(seg_labels) * seconds, dc.k, dc.k * seconds,
        )
    if not args.json:
        label, counts = vote(np.array(seg_labels), np.array(seg_dists), len(labels), dc.tie_break)
        sys.stdout.write(
            f"all {len(seg_labels)} segments: {labels[label]} ({counts[label]}/{len(seg_labels)}); "
            f"{decisions} decisions with k={dc.k}, mode={dc.mode}\n"
        )
    return 0


def _why(event) -> str:
    """The text form of a decision's evidence: its nearest item, or for unknown the nearest place."""
    if event.unknown is not None:
        u = event.unknown
        return f"  nearest place {u.nearest} at {u.distance:.3g} > threshold {u.threshold:.3g}"
    if not event.evidence:
        return ""
    e = event.evidence[0]
    where = f"{e.recording} at {e.offset_s:.1f} s" if e.origin == "model" else f"enrolled {e.enrolled_at} from {e.source} at {e.offset_s:.1f} s"
    return f"  nearest: {where} ({e.distance:.3g})"


def _classify(args: argparse.Namespace, pipeline, labels: tuple[str, ...], rate: int) -> tuple[list[int], list[float], int]:
    """Stream the file through the pipeline, printing decisions (and segments) as they come; returns
    every segment's label and distance, and the number of decisions."""
    from edge_asc.daemon.events import scene_event
    from edge_asc.dsp.audio_io import iter_audio

    seg_labels, seg_dists, decisions = [], [], 0
    out = sys.stdout
    for block in iter_audio(args.file, rate):
        for seg, decision in pipeline.push(block):
            seg_labels.append(seg.label)
            seg_dists.append(seg.distance)
            if args.segments and not args.json:
                out.write(f"  segment {seg.index:4d}  {seg.start / rate:7.2f}-{seg.end / rate:7.2f} s  {labels[seg.label]}  (distance {seg.distance:.4f})\n")
            if decision is None:
                continue
            decisions += 1
            event = scene_event(decision, labels, rate)
            if args.json:
                out.write(event.to_line().decode("utf-8"))
            else:
                votes = ", ".join(f"{k} {v}" for k, v in event.votes.items())
                out.write(f"{event.stream_start_s:7.2f}-{event.stream_end_s:7.2f} s  {event.label:<20} confidence {event.confidence:.2f}  ({votes}){_why(event)}\n")
    return seg_labels, seg_dists, decisions
