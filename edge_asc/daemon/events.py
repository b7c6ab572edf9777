"""Runtime results as protocol events: the daemon's socket and ``classify --json`` use the same builders."""

from __future__ import annotations

import time

from edge_asc.runtime.enrolled import UNKNOWN_LABEL
from edge_asc.protocol.messages import Evidence, Neighbour, Scene, Segment, Unknown
from edge_asc.runtime.decision import Decision
from edge_asc.runtime.pipeline import STAGES, SegmentResult


def explain(decision: Decision, labels: tuple[str, ...]) -> tuple[tuple[Evidence, ...], Unknown | None]:
    """The decision's evidence (each item's runtime.search.Origin, resolved when its segment was heard), and
    for an ``unknown`` decision the nearest enrolled place, its distance and the bound it had to beat."""
    found = []
    for o, distance, _ in decision.evidence:
        found.append(Evidence(o.label, distance, o.kind, o.recording, o.offset_s, o.enrolment, o.enrolled_at, o.source))
    unknown = None
    if decision.evidence and labels[decision.label] == UNKNOWN_LABEL:
        o, distance, bound = decision.evidence[0]
        threshold = bound if bound is not None else o.threshold
        unknown = Unknown(o.label, distance, threshold if threshold is not None else 0.0)
    return tuple(found), unknown


def scene_event(decision: Decision, labels: tuple[str, ...], sample_rate: int, now_mono: float | None = None):
    """protocol.Scene of a decision; latency_ms runs from the last sample entering the ring to now. The
    evidence is the decision's (empty when the index searched names no origins)."""
    now_mono = time.monotonic() if now_mono is None else now_mono
    evidence, unknown = explain(decision, labels)
    return Scene(
        label=labels[decision.label],
        confidence=decision.confidence,
        votes={labels[i]: n for i, n in enumerate(decision.votes) if n},
        k=decision.k,
        mode=decision.mode,
        stream_start_s=decision.start / sample_rate,
        stream_end_s=decision.end / sample_rate,
        wall_time=time.time(),
        latency_ms=(now_mono - decision.ready) * 1000.0,
        segment_index=decision.last_segment,
        evidence=evidence,
        unknown=unknown,
    )


def segment_event(seg: SegmentResult, labels: tuple[str, ...], sample_rate: int):
    """protocol.Segment of one classified segment."""
    return Segment(
        index=seg.index,
        label=labels[seg.label],
        distance=seg.distance,
        neighbours=tuple(Neighbour(labels[lab], d) for lab, d in zip(seg.neighbour_labels, seg.neighbour_distances)),
        stream_start_s=seg.start / sample_rate,
        stream_end_s=seg.end / sample_rate,
        timings_ms={name: t * 1000.0 for name, t in zip(STAGES, seg.timings)},
    )
