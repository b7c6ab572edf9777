"""``edge-asc classify FILE...``: the daemon's decisions for sound files, offline (no socket).

Each file goes through the same Pipeline as ``edge-asc run --source file:FILE``, in bulk (Pipeline.push_bulk:
many segments per feature pass, encoder call and index query), which gives the same segments and decisions
as the daemon's one segment at a time; the enrolled places (``--enrolled``, ``--enrolled-only``) are searched
beside the index. Several files, or directories (their sound files, sorted, recursively), are classified
one after the other by one process, each from a fresh pipeline; the text output heads each with its path.
``--json`` prints one line per decision in the schema of the socket's ``scene`` event, evidence included
(with several files, each line also names its ``file``). On a terminal, a progress line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edge_asc.commands.common import ARTIFACT_FLAGS, add_artifact_arguments, daemon_config, load_runtime

HELP = "classify sound files offline: the decisions the daemon would publish for them"
PROGRESS_INTERVAL_S = 0.25  # the terminal's progress line is redrawn at most this often

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, nargs="+", metavar="FILE", help="sound files (wav, flac, ogg...; any rate, mixed to mono) or directories of them")
    parser.add_argument("--json", action="store_true", help="one JSON scene event per line (as on the daemon's socket)")
    add_artifact_arguments(parser)
    parser.add_argument("--segments", action="store_true", help="also print each segment's label (not with --json)")


def run(args: argparse.Namespace) -> int:
    from edge_asc.dsp.audio_io import AudioFileError
    from edge_asc.contract import ArtifactError

    cfg = daemon_config(args, ARTIFACT_FLAGS)
    try:
        files = sound_files(args.file)
        encoder, index = load_runtime(cfg)
        pipelines = [_pipeline(encoder, index, cfg.decision)]  # the first checks the settings before any file is read
    except (ArtifactError, AudioFileError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    progress = Progress(files) if sys.stderr.isatty() else None
    worst = 0
    try:
        for n, path in enumerate(files):
            pipeline = pipelines.pop() if pipelines else _pipeline(encoder, index, cfg.decision)
            if len(files) > 1 and not args.json:
                sys.stdout.write(f"== {path}\n")
            try:
                worst = max(worst, _classify_file(args, path, pipeline, progress, file_key=str(path) if len(files) > 1 else None))
            except AudioFileError as exc:
                if progress:
                    progress.clear()
                log.error("%s", exc)
                worst = 2
    except BrokenPipeError:  # the reader went away (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    finally:
        if progress:
            progress.clear()
    return worst


def sound_files(paths: list[Path]) -> list[Path]:
    """The files named, with each directory replaced by the sound files under it (sorted; a directory with
    none is an error naming it)."""
    from edge_asc.dsp.audio_io import AudioFileError

    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SOUND_SUFFIXES)
        if not found:
            raise AudioFileError(f"{p}: no sound files ({', '.join(sorted(SOUND_SUFFIXES))}) in this directory")
        out.extend(found)
    return out


SOUND_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"})


def _pipeline(encoder, index, dc):
    from edge_asc.runtime.decision import DecisionPolicy
    from edge_asc.runtime.pipeline import Pipeline

    labels = tuple(index.labels)  # the model's, then enrolled places (and unknown with --enrolled-only)
    policy = DecisionPolicy(len(labels), dc.k, dc.mode, dc.tie_break, dc.k_max)
    return Pipeline(encoder, index, policy, dc.neighbours, silence_dbfs=dc.silence_dbfs)


def _classify_file(args: argparse.Namespace, path: Path, pipeline, progress: "Progress | None", file_key: str | None) -> int:
    """One file through a fresh pipeline, its decisions printed; 1 when it gives no segment."""
    import numpy as np

    from edge_asc.runtime.decision import vote

    labels, dc = pipeline.labels, pipeline.policy
    fc = pipeline.feature_config
    seg_labels, seg_dists, decisions = _classify(args, path, pipeline, labels, fc.sample_rate, progress, file_key)
    if progress:
        progress.clear()
    if not seg_labels:
        log.error("%s: shorter than one %.1f s segment; no decision", path, fc.segment_seconds)
        return 1
    if decisions == 0:  # k longer than the file: say so rather than print nothing
        log.warning(
            "%s: %d segments (%.1f s) are fewer than k=%d (%.1f s): no decision; use a smaller --k",
            path, len(seg_labels), len(seg_labels) * fc.segment_seconds, dc.k, dc.k * fc.segment_seconds,
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


def _classify(args: argparse.Namespace, path: Path, pipeline, labels: tuple[str, ...], rate: int, progress: "Progress | None",
              file_key: str | None) -> tuple[list[int], list[float], int]:
    """Stream the file through the pipeline in bulk, printing decisions (and segments) as they come;
    returns every segment's label and distance, and the number of decisions."""
    import json

    from edge_asc.daemon.events import scene_event
    from edge_asc.dsp.audio_io import READ_BLOCK, audio_info, iter_audio
    from edge_asc.runtime.pipeline import BULK_SEGMENTS, classify_stream

    seg_labels, seg_dists, decisions = [], [], 0
    out = sys.stdout
    info = audio_info(path)
    if progress:
        progress.start(path, info.duration)
    block = max(READ_BLOCK, int(BULK_SEGMENTS * pipeline.feature_config.segment_seconds * info.sample_rate) + 1)  # full runs
    for seg, decision in classify_stream(pipeline, iter_audio(path, rate, block_frames=block)):
        seg_labels.append(seg.label)
        seg_dists.append(seg.distance)
        if progress:
            progress.update(seg.end / rate)
        if args.segments and not args.json:
            out.write(f"  segment {seg.index:4d}  {seg.start / rate:7.2f}-{seg.end / rate:7.2f} s  {labels[seg.label]}  (distance {seg.distance:.4f})\n")
        if decision is None:
            continue
        decisions += 1
        event = scene_event(decision, labels, rate)
        if args.json:
            line = event.to_line().decode("utf-8")
            out.write(line if file_key is None else json.dumps({**json.loads(line), "file": file_key}, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            votes = ", ".join(f"{k} {v}" for k, v in event.votes.items())
            out.write(f"{event.stream_start_s:7.2f}-{event.stream_end_s:7.2f} s  {event.label:<20} confidence {event.confidence:.2f}  ({votes}){_why(event)}\n")
    return seg_labels, seg_dists, decisions


class Progress:
    """One line on stderr (a terminal): file n of N, audio seconds done of the file's, the whole run's speed."""

    def __init__(self, files: list[Path]) -> None:
        import time

        self._clock = time.monotonic
        self.total, self.n = len(files), 0
        self.t0 = self._clock()
        self.done_before = 0.0  # audio seconds of the files finished
        self._shown = 0.0
        self._width = 0

    def start(self, path: Path, duration: float) -> None:
        self.n += 1
        self.path, self.duration, self.pos = path, duration, 0.0

    def update(self, seconds: float, force: bool = False) -> None:
        self.pos = seconds
        now = self._clock()
        if not force and now - self._shown < PROGRESS_INTERVAL_S:
            return
        self._shown = now
        audio = self.done_before + seconds
        speed = audio / max(now - self.t0, 1e-9)
        text = f"file {self.n}/{self.total} {self.path.name}: {seconds:.0f}/{self.duration:.0f} s of audio ({speed:.0f}x real time)"
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0
        if getattr(self, "pos", 0.0):
            self.done_before += self.pos
            self.pos = 0.0
