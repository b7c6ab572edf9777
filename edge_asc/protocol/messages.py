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

import dataclasses
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

PROTOCOL_VERSION = 1

MODES = ("window", "sliding")  # decision policies: every k segments / every segment over the last k
STREAM_EVENTS = ("scene", "segment", "status")  # event types a client chooses with ``subscribe``
DEFAULT_EVENTS = ("scene", "status")  # streamed to a client that never subscribed
ALWAYS_EVENTS = ("hello", "error", "pong")  # sent whatever the subscription

# error codes (the set is open: clients must accept codes they do not know)
SOURCE_LOST = "source_lost"  # the audio source failed; the daemon retries
SOURCE_BACK = "source_back"  # the audio source works again
BAD_REQUEST = "bad_request"  # a request line that could not be used; ``request`` quotes it
DROPPED = "dropped"  # ``count`` events were dropped because this client read too slowly
INTERNAL = "internal"  # the daemon failed to handle a valid request (its log has the details)

REQUEST_PREVIEW_CHARS = 200  # how much of an offending request an ``error`` event quotes


class ProtocolError(ValueError):
    """A line or a message that does not follow the protocol; the message says what is wrong."""


class UnknownTypeError(ProtocolError):
    """A well-formed line of a message type this side does not know (e.g. from a newer peer)."""


def preview(line: bytes | str) -> str:
    """The first characters of a (possibly binary) line, for error messages."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, (bytes, bytearray)) else line
    text = text.rstrip("\r\n")
    return text if len(text) <= REQUEST_PREVIEW_CHARS else text[:REQUEST_PREVIEW_CHARS] + "..."


# --- value checking against the field annotations -------------------------------------------------


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as a plain JSON-able value of annotation ``tp``, or ProtocolError naming ``where``."""
    return _checker(tp)(value, where)


@cache
def _checker(tp: Any) -> Callable[[Any, str], Any]:
    """A function ``(value, where) -> value`` checking one annotation (built once per annotation)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]  # only Optional[X] is used
        check_inner = _checker(inner)
        return lambda value, where: None if value is None else check_inner(value, where)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        check_item = _checker(item_tp)

        def check_tuple(value: Any, where: str) -> tuple:
            if not isinstance(value, (list, tuple, np.ndarray)):
                raise ProtocolError(f"{where}: expected a list, got {_describe(value)}")
            return tuple(check_item(v, f"{where}[{i}]") for i, v in enumerate(value))

        return check_tuple
    if origin is dict:
        (_key_tp, item_tp) = typing.get_args(tp)
        check_value = _checker(item_tp)

        def check_dict(value: Any, where: str) -> dict:
            if not isinstance(value, Mapping):
                raise ProtocolError(f"{where}: expected an object, got {_describe(value)}")
            out = {}
            for key, v in value.items():
                if not isinstance(key, str):
                    raise ProtocolError(f"{where}: keys must be strings, got {key!r}")
                out[key] = check_value(v, f"{where}.{key}")
            return out

        return check_dict
    if isinstance(tp, type) and issubclass(tp, Record):

        def check_record(value: Any, where: str) -> Record:
            if isinstance(value, tp):
                return value
            if not isinstance(value, Mapping):
                raise ProtocolError(f"{where}: expected an object with {', '.join(tp.field_names())}, got {_describe(value)}")
            return tp.from_dict(value, where=where)

        return check_record
    if tp in _SCALAR_CHECKS:
        return _SCALAR_CHECKS[tp]
    raise TypeError(f"annotation {tp!r} is not supported by the protocol")  # a bug in this module


def _check_bool(value: Any, where: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ProtocolError(f"{where}: expected true or false, got {_describe(value)}")


def _check_int(value: Any, where: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise ProtocolError(f"{where}: expected an integer, got {_describe(value)}")


def _check_float(value: Any, where: str) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        value = float(value)
        if math.isfinite(value):
            return value
        raise ProtocolError(f"{where}: expected a finite number, got {value}")
    raise ProtocolError(f"{where}: expected a number, got {_describe(value)}")


def _check_str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise ProtocolError(f"{where}: expected a string, got {_describe(value)}")


_SCALAR_CHECKS = {bool: _check_bool, int: _check_int, float: _check_float, str: _check_str}


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:60] + '...'}"


def _plain(value: Any) -> Any:
    """JSON-ready form of a checked field value (tuples -> lists, records -> objects)."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Record:
    """A frozen dataclass whose fields are checked (and numpy values made plain) on construction."""

    def __post_init__(self) -> None:
        name = getattr(self, "type", "") or type(self).__name__
        for field_name, check in self._field_checks():
            object.__setattr__(self, field_name, check(getattr(self, field_name), f"{name}.{field_name}"))
        self._check()

    def _check(self) -> None:
        """Rules beyond the field types (ranges, accepted values); raise ProtocolError."""

    @classmethod
    @cache
    def _field_checks(cls) -> tuple[tuple[str, Callable[[Any, str], Any]], ...]:
        hints = typing.get_type_hints(cls)
        return tuple((f.name, _checker(hints[f.name])) for f in dataclasses.fields(cls))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue  # optional and absent: not written
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "", strict: bool = False) -> Any:
        """Build from a decoded JSON object; ``strict`` refuses fields this side does not know."""
        where = where or cls.__name__
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if strict:
            unknown = sorted(set(data) - set(fields))
            if unknown:
                raise ProtocolError(f"{where}: unknown field {unknown[0]!r}; accepted fields: {', '.join(fields) or 'none'}")
        missing = [
            name
            for name, f in fields.items()
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ProtocolError(f"{where}: missing field {missing[0]!r}" + (f" (and {', '.join(missing[1:])})" if missing[1:] else ""))
        try:
            return cls(**{name: data[name] for name in fields if name in data})
        except ProtocolError as exc:
            raise ProtocolError(str(exc).replace(f"{getattr(cls, 'type', '') or cls.__name__}.", f"{where}.", 1)) from None


@dataclass(frozen=True)
class Neighbour(Record):
    """One retrieved neighbour of a segment: its label and distance (squared L2 in the index)."""

    label: str
    distance: float


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
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Any) -> Any:
        """A message of this family from a decoded JSON value."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a JSON object with a \"type\", got {_describe(data)}")
        kind = data.get("type")
        if not isinstance(kind, str):
            raise ProtocolError("missing \"type\" (a string naming the message)" if kind is None else f"\"type\" must be a string, got {_describe(kind)}")
        version = data.get("v", PROTOCOL_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ProtocolError(f"\"v\" must be an integer, got {_describe(version)}")
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
    if mode not in MODES:
        raise ProtocolError(f"{where}.mode: {mode!r} is not a mode; accepted: {', '.join(MODES)}")


def _check_k(where: str, k: int) -> None:
    if k < 1:
        raise ProtocolError(f"{where}.k: must be at least 1, got {k}")


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

    def _check(self) -> None:
        _check_k(self.type, self.k)
        _check_mode(self.type, self.mode)


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

    def _check(self) -> None:
        _check_k(self.type, self.k)
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
    """Change the decision policy at run time: ``k``, ``mode`` or both."""

    type: ClassVar[str] = "set"
    k: int | None = None
    mode: str | None = None

    def _check(self) -> None:
        if self.k is None and self.mode is None:
            raise ProtocolError("set: give k, mode or both")
        if self.k is not None:
            _check_k(self.type, self.k)
        if self.mode is not None:
            _check_mode(self.type, self.mode)


@dataclass(frozen=True)
class Ping(Request):
    """Ask for a ``pong``."""

    type: ClassVar[str] = "ping"


EVENT_TYPES = tuple(Event._registry)
REQUEST_TYPES = tuple(Request._registry)
