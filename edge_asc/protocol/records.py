"""Typed records to and from JSON: frozen dataclasses whose fields are checked against their
annotations on construction (numpy values made plain), written with ``to_dict`` and read strictly
with ``from_dict``. The protocol's messages (edge_asc.protocol.messages) are records.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
import types
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Mapping

import numpy as np

from edge_asc.bounded import cut


class ProtocolError(ValueError):
    """A line or a message that does not follow the protocol; the message says what is wrong."""


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
                raise ProtocolError(f"{where}: expected a list, got {describe(value)}")
            return tuple(check_item(v, f"{where}[{i}]") for i, v in enumerate(value))

        return check_tuple
    if origin is dict:
        (_key_tp, item_tp) = typing.get_args(tp)
        check_value = _checker(item_tp)

        def check_dict(value: Any, where: str) -> dict:
            if not isinstance(value, Mapping):
                raise ProtocolError(f"{where}: expected an object, got {describe(value)}")
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
                raise ProtocolError(f"{where}: expected an object with {', '.join(tp.field_names())}, got {describe(value)}")
            return tp.from_dict(value, where=where)

        return check_record
    if tp in _SCALAR_CHECKS:
        return _SCALAR_CHECKS[tp]
    raise TypeError(f"annotation {tp!r} is not supported by the protocol")  # a bug in this module


def _check_bool(value: Any, where: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ProtocolError(f"{where}: expected true or false, got {describe(value)}")


def _check_int(value: Any, where: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise ProtocolError(f"{where}: expected an integer, got {describe(value)}")


def _check_float(value: Any, where: str) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        value = float(value)
        if math.isfinite(value):
            return value
        raise ProtocolError(f"{where}: expected a finite number, got {value}")
    raise ProtocolError(f"{where}: expected a number, got {describe(value)}")


def _check_str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise ProtocolError(f"{where}: expected a string, got {describe(value)}")


_SCALAR_CHECKS = {bool: _check_bool, int: _check_int, float: _check_float, str: _check_str}


def describe(value: Any) -> str:
    """The type and a short repr of a value, bounded whatever the value (edge_asc.bounded.cut)."""
    return f"{type(value).__name__} {cut(value)}"


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
