"""The daemon's event protocol: newline-delimited JSON, one object per line, version ``PROTOCOL_VERSION``.

Every line is a JSON object with ``"type"`` (what it is) and ``"v"`` (the protocol version).
The daemon sends *events* (``hello``, ``scene``, ``segment``, ``status``, ``error``, ``pong``); a
client sends *requests* (``subscribe``, ``set``, ``ping``). Each message is a frozen dataclass with
``to_line() -> bytes`` and a registry-based ``from_line(bytes)`` on its family (``Event`` or
``Request``), in the style of wyoming's events. docs/protocol.md is the reference for integrators.

Values are checked when a message is built and when a line is parsed, against the field
annotations: a line that is not UTF-8, not JSON, not an object, of an unknown type, missing a
field or carrying a value of the wrong type raises ``ProtocolError`` with a message that says
which. numpy scalars and arrays are accepted when building (the pipeline hands them over) and
become plain JSON numbers and lists. Non-finite numbers (NaN, inf) are refused: JSON has none.

Compatibility: clients ignore event fields they do not know (fields may be added within a
version), while the daemon refuses unknown request fields (a typo such as ``"K"`` is an error, not
a no-op). A change that breaks either rule bumps ``PROTOCOL_VERSION``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edge_asc.bounded import MAX_DEPTH, depth
from edge_asc.protocol.evidence import Evidence, Neighbour, Unknown
from edge_asc.protocol.records import ProtocolError, Record, describe
from edge_asc.runtime.decision import check_k, check_mode

PROTOCOL_VERSION = 1

STREAM_EVENTS = ("scene", "segment", "status")  # event types a client chooses with ``subscribe``
DEFAULT_EVENTS = ("scene", "status")  # streamed to a client that never subscribed
ENROL_EVENTS = ("enrolling", "enrolled", "forgotten")  # enrolment over the socket (server.allow_enroll); added in version 1
ALWAYS_EVENTS = ("hello", "error", "pong") + ENROL_EVENTS  # sent whatever the subscription

# error codes (the set is open: clients must accept codes they do not know)
SOURCE_LOST = "source_lost"  # the audio source failed; the daemon retries
SOURCE_BACK = "source_back"  # the audio source works again
BAD_REQUEST = "bad_request"  # a request line that could not be used; ``request`` quotes it
DROPPED = "dropped"  # ``count`` events were dropped because this client read too slowly
INTERNAL = "internal"  # the daemon failed to handle a valid request (its log has the details)
ENROL_REFUSED = "enrol_refused"  # an enroll / forget request that was not carried out; the message says why
MAX_ENROL_S = 600.0  # the longest enrolment one request may ask for
RATE_LIMITED = "rate_limited"  # requests over the client's rate were not handled; ``count`` says how many (added in version 1)
UNAUTHORIZED = "unauthorized"  # a TCP client without the token asked for a change, or sent a wrong token (added in version 1)
BUSY = "busy"  # the daemon serves its maximum number of clients; the connection is closed (added in version 1)

REQUEST_PREVIEW_CHARS = 200  # how much of an offending request an ``error`` event quotes


class UnknownTypeError(ProtocolError):
    """A well-formed line of a message type this side does not know (e.g. from a newer peer)."""


def preview(line: bytes | str) -> str:
    """The first characters of a (possibly binary) line, for error messages."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, (bytes, bytearray)) else line
    text = text.rstrip("\r\n")
    return text if len(text) <= REQUEST_PREVIEW_CHARS else text[:REQUEST_PREVIEW_CHARS] + "..."


# --- messages: a registry per family ---------------------------------------------------------------


@dataclass(frozen=True)
class Message(Record):
    """A protocol line. Subclasses set ``type``; ``Event`` and ``Request`` each keep a registry."""

    type: ClassVar[str] = ""
    _registry: ClassVar[dict] = {}  # type name -> class
    _strict: ClassVar[bool] = False  # refuse unknown fields when parsing

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_registry" in cls.__dict__:
            return  # a family base (Event, Request) with its own registry
        if cls.type in cls._registry:
            raise TypeError(f"message type {cls.type!r} registered twice")
        cls._registry[cls.type] = cls

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "v": PROTOCOL_VERSION, **super().to_dict()}

    def to_line(self) -> bytes:
        """One UTF-8 JSON line, newline-terminated."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8") + b"\n"

    @classmethod
    def from_line(cls, line: bytes | str) -> Any:
        """Parse one line into a message of this family (or of this exact class)."""
        if isinstance(line, (bytes, bytearray)):
            try:
                line = bytes(line).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"not UTF-8 text (byte {exc.start})") from None
        text = line.strip()
        if not text:
            raise ProtocolError("empty line; expected a JSON object")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"not JSON: {exc.msg} at column {exc.colno}") from None
        except RecursionError:
            raise ProtocolError("not JSON this side accepts: nested too deeply") from None
        except ValueError:  # an integer longer than Python's int-from-str limit
            raise ProtocolError("not JSON this side accepts: a number too long") from None
        if depth(data, MAX_DEPTH) > MAX_DEPTH:
            raise ProtocolError(f"not JSON this side accepts: nested more than {MAX_DEPTH} levels deep")
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Any) -> Any:
        """A message of this family from a decoded JSON value."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a JSON object with a \"type\", got {describe(data)}")
        kind = data.get("type")
        if not isinstance(kind, str):
            raise ProtocolError("missing \"type\" (a string naming the message)" if kind is None else f"\"type\" must be a string, got {describe(kind)}")
        version = data.get("v", PROTOCOL_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ProtocolError(f"\"v\" must be an integer, got {describe(version)}")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported protocol version {version}; this side speaks version {PROTOCOL_VERSION}")
        family = cls._family()
        target = cls._registry.get(kind)
        if target is None:
            raise UnknownTypeError(f"unknown {family} type {kind!r}; known: {', '.join(cls._registry)}")
        if cls.type and target is not cls:
            raise ProtocolError(f"expected a {cls.type!r} {family}, got {kind!r}")
        fields = {k: v for k, v in data.items() if k not in ("type", "v")}
        return target.from_dict(fields, where=kind, strict=target._strict)

    @classmethod
    def _family(cls) -> str:
        return next(base for base in cls.__mro__ if "_registry" in base.__dict__).__name__.lower()


@dataclass(frozen=True)
class Event(Message):
    """A line from the daemon to a client."""

    _registry: ClassVar[dict] = {}  # type name -> class


@dataclass(frozen=True)
class Request(Message):
    """A line from a client to the daemon. Unknown fields are refused."""

    _registry: ClassVar[dict] = {}  # type name -> class
    _strict: ClassVar[bool] = True


def _check_mode(where: str, mode: str) -> None:
    try:
        check_mode(mode, f"{where}.mode")
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


def _check_k(where: str, k: int, name: str = "k") -> None:
    """A requested k (or k_max) follows the daemon's rule (edge_asc.runtime.decision.check_k)."""
    try:
        check_k(k, f"{where}.{name}")
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


def _check_reported_k(where: str, k: int, name: str = "k") -> None:
    """A k (or k_max) the daemon reports is only checked to be positive: a client stays readable by a
    daemon whose limit on k is larger than this version's."""
    if k < 1:
        raise ProtocolError(f"{where}.{name}: must be at least 1, got {k}")


# --- events -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello(Event):
    """Sent once on connect: what the daemon runs and how it decides."""

    type: ClassVar[str] = "hello"
    protocol: int
    labels: tuple[str, ...]
    k: int
    mode: str
    segment_seconds: float
    sample_rate: int
    model_sha256: str
    model_version: str
    events_available: tuple[str, ...] = STREAM_EVENTS
    enrolled: tuple[str, ...] = ()  # enrolled places (labels); added in version 1
    enrolled_only: bool = False  # only enrolled places are candidates; ``unknown`` is a label
    k_max: int | None = None  # adaptive mode's most segments per decision (added in version 1; null from older daemons)

    def _check(self) -> None:
        _check_reported_k(self.type, self.k)
        _check_mode(self.type, self.mode)
        if self.k_max is not None:
            _check_reported_k(self.type, self.k_max, "k_max")


@dataclass(frozen=True)
class Scene(Event):
    """A decision: the majority label of k segment labels."""

    type: ClassVar[str] = "scene"
    label: str
    confidence: float  # share of the votes for ``label``
    votes: dict[str, int]  # label -> number of segments
    k: int
    mode: str
    stream_start_s: float  # stream time (s) where the audio used starts: its first sample
    stream_end_s: float  # stream time (s) where the audio used ends: just after its last sample
    wall_time: float  # unix seconds when the decision was made
    latency_ms: float  # processing time from the last sample to the decision
    segment_index: int  # index of the decision's last segment
    evidence: tuple[Evidence, ...] = ()  # nearest items behind ``label``, nearest first (added in version 1)
    unknown: Unknown | None = None  # ``label`` is unknown: the nearest place and its threshold

    def _check(self) -> None:
        _check_reported_k(self.type, self.k)
        _check_mode(self.type, self.mode)


@dataclass(frozen=True)
class Segment(Event):
    """One 300 ms segment classified by its nearest labelled neighbours."""

    type: ClassVar[str] = "segment"
    index: int
    label: str
    distance: float
    neighbours: tuple[Neighbour, ...]
    stream_start_s: float  # as in Scene: the segment's own 300 ms (its left context not included)
    stream_end_s: float
    timings_ms: dict[str, float] = field(default_factory=dict)  # features, encoder, search, total


@dataclass(frozen=True)
class Status(Event):
    """Every few seconds: progress, health and per-stage processing times."""

    type: ClassVar[str] = "status"
    uptime_s: float
    segments: int
    overflows: int
    timings_ms: dict[str, dict[str, float | None]]  # stage -> {"median", "p99"}; null before any segment
    subscribers: int
    drops: int
    source: str
    k: int
    mode: str
    mqtt_connected: bool | None = None  # connected to the MQTT broker; null: MQTT is off (added in version 1)
    k_max: int | None = None  # as in Hello (added in version 1)


@dataclass(frozen=True)
class Error(Event):
    """Something a client should know: a source problem, a bad request, dropped events."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    request: str | None = None  # the offending request (bad_request), abridged
    count: int | None = None  # events dropped (dropped)


@dataclass(frozen=True)
class Pong(Event):
    """The answer to ``ping``; requests are handled in order, so it also acknowledges earlier ones."""

    type: ClassVar[str] = "pong"


# --- requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribe(Request):
    """Choose the streamed event types (replaces the previous choice; hello/error/pong always come)."""

    type: ClassVar[str] = "subscribe"
    events: tuple[str, ...]

    def _check(self) -> None:
        for name in self.events:
            if name not in STREAM_EVENTS:
                raise ProtocolError(f"subscribe.events: {name!r} is not an event one subscribes to; accepted: {', '.join(STREAM_EVENTS)}")
        object.__setattr__(self, "events", tuple(dict.fromkeys(self.events)))  # in order, no repeats


@dataclass(frozen=True)
class Set(Request):
    """Change the decision policy at run time: any of ``k``, ``mode`` and ``k_max`` (adaptive mode's
    limit; added in version 1), in one step."""

    type: ClassVar[str] = "set"
    k: int | None = None
    mode: str | None = None
    k_max: int | None = None

    def _check(self) -> None:
        if self.k is None and self.mode is None and self.k_max is None:
            raise ProtocolError("set: give k, mode, k_max or several of them")
        if self.k is not None:
            _check_k(self.type, self.k)
        if self.mode is not None:
            _check_mode(self.type, self.mode)
        if self.k_max is not None:
            _check_k(self.type, self.k_max, "k_max")


@dataclass(frozen=True)
class Ping(Request):
    """Ask for a ``pong``."""

    type: ClassVar[str] = "ping"


@dataclass(frozen=True)
class Auth(Request):
    """A TCP client's first request: the shared token (server.tcp_token_file) that lets it change
    settings; without it a TCP client only reads events. Added in version 1."""

    type: ClassVar[str] = "auth"
    token: str


@dataclass(frozen=True)
class Enroll(Request):
    """Remember the place the daemon hears now: the next ``seconds`` of the live stream become ``label``."""

    type: ClassVar[str] = "enroll"
    label: str
    seconds: float = 20.0

    def _check(self) -> None:
        if not 0 < self.seconds <= MAX_ENROL_S:
            raise ProtocolError(f"enroll.seconds: must be more than 0 and at most {MAX_ENROL_S:g}, got {self.seconds!r}")


@dataclass(frozen=True)
class Forget(Request):
    """Remove the enrolled place ``label``."""

    type: ClassVar[str] = "forget"
    label: str


@dataclass(frozen=True)
class Enrolling(Event):
    """Progress of an enrolment from the live stream, about once a second."""

    type: ClassVar[str] = "enrolling"
    label: str
    seconds: float  # heard so far
    of: float  # asked for


@dataclass(frozen=True)
class Enrolled(Event):
    """An enrolment from the live stream is written; the daemon searches it from the next segment on."""

    type: ClassVar[str] = "enrolled"
    label: str
    items: int  # segments added
    seconds: float
    threshold: float  # the place's threshold now (squared L2)
    total_items: int  # the place's items now
    model_label: bool  # the label is one of the model's: the items add audio of that class


@dataclass(frozen=True)
class Forgotten(Event):
    """An enrolled place was removed (``forget``)."""

    type: ClassVar[str] = "forgotten"
    label: str
    items: int


EVENT_TYPES = tuple(Event._registry)
REQUEST_TYPES = tuple(Request._registry)
