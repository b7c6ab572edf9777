"""The records a decision carries as its evidence (protocol version 1, docs/protocol.md): the neighbours of a
segment, the nearest items behind a scene decision, and why a decision is ``unknown``.

Plain records (edge_asc.protocol.records) nested in the ``scene`` and ``segment`` events of
edge_asc.protocol.messages, which re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_asc.protocol.records import Record


@dataclass(frozen=True)
class Neighbour(Record):
    """One retrieved neighbour of a segment: its label and distance (squared L2 in the index)."""

    label: str
    distance: float


@dataclass(frozen=True)
class Evidence(Record):
    """A nearest item behind a decision: its label, distance and where it came from (``origin``: ``model``,
    a training recording and the offset in it, or ``enrolled``, an enrolment, its time and source)."""

    label: str
    distance: float  # squared L2, as in the index
    origin: str  # "model" | "enrolled"
    recording: str | None = None
    offset_s: float | None = None
    enrolment: str | None = None
    enrolled_at: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Unknown(Record):
    """Why a decision is ``unknown``: the nearest enrolled place, how far it was and its threshold."""

    nearest: str
    distance: float
    threshold: float
