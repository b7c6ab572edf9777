"""Enrolling a place: audio -> checked segment embeddings -> a calibrated threshold -> the overlay on disk.

``enrol`` and ``forget`` are the read-modify-write steps behind ``edge-asc enroll`` / ``forget``: under the
overlay's lock they read the current overlay, change it in memory and replace it atomically
(edge_asc.runtime.enrolled). Any refusal (``EnrolError``: bad label, empty, silent or too short audio, a
stale overlay, a failed write) leaves the overlay as it was. Only embeddings are kept, never audio.

Threshold of a place (squared L2, the index's distance): its items are cut into CALIBRATION_CHUNK_S chunks
of audio; each item's nearest distance to the place's items in *other* chunks is what audio of the same
place, heard a little later, looks like. The threshold is the CALIBRATION_QUANTILE of those distances times
CALIBRATION_MARGIN. bench/bench_enroll.py chose both on ambient13 (20 s enrolled, 3 folds grouped by
recording, an encoder per fold that never heard the test recordings, nested selection maximising
min(keep, unknown)): every fold chose the 0.9 quantile with margin 1.0 (keep 0.78, unknown 0.69 of
segments). The daemon's default ``--enrolled-only`` rule is now the ratio test of runtime.search (keep 0.78,
unknown 0.81 on the same bench); these thresholds are used with ``decision.unknown_ratio: null`` and are
stored and reported with each place either way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_asc.contract import ArtifactError
from edge_asc.runtime.enrolled import LABEL_PATTERN, SILENCE_LABEL, UNKNOWN_LABEL, Enrolment
from edge_asc.dsp.features import FeatureExtractor, Segmenter
from edge_asc.runtime.enrolled import EnrolledSet, locked, utc_now

SILENCE_RMS = 1e-4  # -80 dBFS: below this a file or a capture counts as silent
CALIBRATION_CHUNK_S = 2.0
CALIBRATION_QUANTILE = 0.9
CALIBRATION_MARGIN = 1.0
EMBED_BATCH = 256


class EnrolError(Exception):
    """A refused enrolment or forget; the one-line message says why (the overlay is unchanged)."""


@dataclass(frozen=True)
class EnrolResult:
    label: str
    items: int  # items added by this enrolment
    seconds: float
    threshold: float  # the label's threshold now
    total_items: int  # the label's items now
    model_label: bool  # the label is one of the model's: the items add audio of that class


def check_label(label: str) -> None:
    if not re.fullmatch(LABEL_PATTERN, label):
        raise EnrolError(f"label {label!r} is not accepted: use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    if label == UNKNOWN_LABEL:
        raise EnrolError(f"label {UNKNOWN_LABEL!r} is reserved for audio far from every enrolled place; choose another name")
    if label == SILENCE_LABEL:
        raise EnrolError(f"label {SILENCE_LABEL!r} is reserved for segments below the level gate; choose another name")


def check_audio(samples: np.ndarray, name: str, rate: int, segment_samples: int) -> None:
    """Refuse empty, silent or shorter-than-one-segment audio, naming it."""
    if samples.size == 0:
        raise EnrolError(f"{name}: holds no audio")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise EnrolError(f"{name}: is silent (RMS {20 * np.log10(max(rms, 1e-12)):.0f} dBFS); nothing to remember")
    if samples.size < segment_samples:
        raise EnrolError(f"{name}: {samples.size / rate:.2f} s is shorter than one {segment_samples / rate:.1f} s segment")


def embed_samples(encoder, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mono model-rate samples -> (embeddings (n, D) float32, segment start offsets (n,) s), cut and
    featurised exactly as the pipeline does for a stream."""
    cfg = encoder.meta.feature_config
    extractor, segmenter = FeatureExtractor(cfg), Segmenter(cfg)
    feats = [extractor.segment_features(x) for _, x in segmenter.push(samples)]  # each (frames, n_features)
    if not feats:
        return np.zeros((0, encoder.meta.embedding_size), dtype=np.float32), np.zeros(0)
    x = np.stack(feats).astype(np.float32)
    emb = np.concatenate([encoder.embed(x[i : i + EMBED_BATCH]) for i in range(0, len(x), EMBED_BATCH)])
    return emb, np.arange(len(feats)) * cfg.segment_seconds


def calibrate(embeddings: np.ndarray, groups: np.ndarray, quantile: float = CALIBRATION_QUANTILE, margin: float = CALIBRATION_MARGIN) -> float:
    """Leave-one-chunk-out threshold of one place: ``embeddings`` (n, D), ``groups`` (n,) chunk ids.
    With a single chunk, each item is left out alone (its neighbours in time included)."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        raise EnrolError("a place needs at least two segments (0.6 s) of audio to calibrate its threshold")
    sq = np.einsum("ij,ij->i", x, x)
    d = np.maximum(sq[:, None] - 2.0 * x @ x.T + sq[None, :], 0.0)  # (n, n)
    groups = np.asarray(groups)
    same = groups[:, None] == groups[None, :] if np.unique(groups).size > 1 else np.eye(n, dtype=bool)
    d[same] = np.inf
    return float(np.quantile(d.min(axis=1), quantile) * margin)


def chunk_groups(set_: EnrolledSet, label: str, chunk_s: float = CALIBRATION_CHUNK_S) -> np.ndarray:
    """(n,) chunk id of each item of ``label``: its enrolment and its offset // chunk_s."""
    mine = set_.item_labels == set_.labels.index(label)
    return set_.item_enrolments[mine] * 100_000 + np.floor(set_.offsets[mine] / chunk_s).astype(np.int64)


def recalibrated(set_: EnrolledSet, label: str) -> EnrolledSet:
    threshold = calibrate(set_.vectors_of(label), chunk_groups(set_, label))
    return set_.with_threshold(label, threshold, {"chunk_s": CALIBRATION_CHUNK_S, "quantile": CALIBRATION_QUANTILE, "margin": CALIBRATION_MARGIN})


def enrol(directory: str | Path, encoder, label: str, audio: Sequence[tuple[str, np.ndarray]], model_labels: Sequence[str] = ()) -> EnrolResult:
    """Add ``audio`` ((source name, mono model-rate samples), ...) to ``label`` in the overlay at ``directory``."""
    check_label(label)
    cfg = encoder.meta.feature_config
    pieces = []
    for name, samples in audio:
        check_audio(samples, name, cfg.sample_rate, cfg.segment_samples)
        pieces.append(Piece(name, samples.size / cfg.sample_rate, *embed_samples(encoder, samples)))
    return enrol_embeddings(directory, encoder.meta, label, pieces, model_labels)


@dataclass(frozen=True)
class Piece:
    """Embedded audio of one source: its name, length, embeddings (n, D) and their offsets (n,) in seconds."""

    name: str
    seconds: float
    embeddings: np.ndarray
    offsets: np.ndarray


def enrol_embeddings(directory: str | Path, meta, label: str, pieces: Sequence[Piece], model_labels: Sequence[str] = ()) -> EnrolResult:
    """Add already embedded ``pieces`` to ``label`` (what the daemon does with the segments it heard):
    under the lock, read, add, recalibrate, replace atomically."""
    check_label(label)
    now = utc_now()
    with locked(directory):
        try:
            current = EnrolledSet.load_or_empty(directory, meta)
        except ArtifactError as exc:
            raise EnrolError(str(exc)) from None
        new = current
        for p in pieces:
            eid = unique_id(f"{label}@{utc_now_precise()}", {e.id for e in new.manifest.enrolments})
            new = new.with_items(Enrolment(eid, label, p.name, now, round(p.seconds, 3), int(p.embeddings.shape[0])), p.embeddings, p.offsets)
        new = recalibrated(new, label)
        _save(new, directory)
    added = sum(p.embeddings.shape[0] for p in pieces)
    return EnrolResult(label, added, sum(p.seconds for p in pieces), new.manifest.thresholds[label], new.counts()[label], label in model_labels)


def utc_now_precise() -> str:
    """UTC now to the microsecond (an enrolment's id; its ``time`` stays in whole seconds)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def unique_id(base: str, taken: set[str]) -> str:
    """``base``, or ``base#2``, ``base#3``... whichever is not ``taken`` (ids are made under the overlay's
    lock, so two enrolments can never get the same one, even within a microsecond)."""
    eid, n = base, 1
    while eid in taken:
        n += 1
        eid = f"{base}#{n}"
    return eid


def forget(directory: str | Path, label: str) -> int:
    """Remove every item of ``label`` from the overlay; returns how many. Works on an overlay made with
    another encoder too (that is how a stale overlay is cleared)."""
    with locked(directory):
        try:
            current = EnrolledSet.load(directory)
        except ArtifactError as exc:
            if not Path(directory).exists():
                raise EnrolError(f"no enrolled places in {directory}; nothing to forget") from None
            raise EnrolError(str(exc)) from None
        if label not in current.labels:
            raise EnrolError(f"no enrolled place {label!r} in {directory}; enrolled: {', '.join(current.labels) or 'none'}")
        removed = current.counts()[label]
        _save(current.without(label), directory)
    return removed


def _save(set_: EnrolledSet, directory: str | Path) -> None:
    try:
        set_.save(directory)
    except OSError as exc:
        raise EnrolError(f"cannot write the enrolled places to {directory} ({exc.strerror or exc}); they are unchanged") from None
