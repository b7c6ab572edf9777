"""Typed configuration: frozen dataclasses filled from YAML (safe_load) and CLI overrides.

Every section of a config file is a frozen dataclass. Loading is strict: an unknown key is an
error naming the key (and the keys that are accepted), a value of the wrong type is an error naming
the key and the expected type, and a field may declare its accepted values with
``field(metadata={"choices": (...)})``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from edge_asc.bounded import MAX_DEPTH, QUOTE_CHARS, cut, one_line, read_text

T = TypeVar("T")

# PyYAML reads YAML 1.1, where a float needs a dot: `1e-3` loads as the string "1e-3". A float setting
# accepts that spelling (and only that: a plain number in exponent notation), as a user means it.
MAX_INT_BITS = 64  # no integer setting needs more; a longer one is refused before any message prints it
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


class _BoundedLoader(yaml.SafeLoader):
    """safe_load without aliases and with a nesting limit.

    An alias (``*name``) lets a few hundred bytes stand for billions of values (the "billion laughs");
    a config file has no use for one, so any alias is refused. PyYAML composes nested collections by
    recursion, so nesting deeper than MAX_DEPTH is refused before Python's recursion limit is reached.
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            raise yaml.composer.ComposerError(
                None, None, f"found the alias *{event.anchor}: aliases are not accepted in config files", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def key_name(key: Any) -> str:
    """A key of a config mapping as it is named in messages: a string cut to QUOTE_CHARS, another value's
    short repr (YAML keys may be booleans or numbers, of any size)."""
    return one_line(key, QUOTE_CHARS) if isinstance(key, str) else cut(key)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and minimally coerce) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {cut(value)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {cut(value)}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} settings, got {cut(value)}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {cut(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {cut(value)}")
        if value.bit_length() > MAX_INT_BITS:
            raise ConfigError(f"{key}: {cut(value)} is beyond any setting's range")
        return value
    if tp is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {cut(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {cut(value)}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{key}: expected a path, got {cut(value)}")
        return Path(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, refusing unknown keys and bad values."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected a mapping of settings, got {cut(data)}")
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = sorted(map(key_name, set(data) - set(fields)))  # YAML keys may be booleans (yes:) or numbers
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]}"
            + (f" (and {', '.join(prefix + u for u in unknown[1:6])}{', ...' if len(unknown) > 6 else ''})" if len(unknown) > 1 else "")
            + f"; accepted keys: {', '.join(prefix + k for k in fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        value = _coerce(value, hints[name], key)
        choices = fields[name].metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{key}: {cut(value)} is not accepted; accepted values: {', '.join(map(str, choices))}")
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {one_line(str(exc))}") from exc
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain (YAML/JSON-safe) dict of a config dataclass."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(obj)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (bounded: edge_asc.bounded's size limit, UTF-8, no aliases, MAX_DEPTH levels);
    an empty file is an empty mapping. Every refusal is a one-line ConfigError naming the file."""
    path = Path(path)
    text = read_text(path, ConfigError, "config file")
    try:
        data = yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {one_line(str(exc))}") from None
    except (ValueError, RecursionError) as exc:  # an integer beyond Python's int-from-str limit; deep flow nesting
        raise ConfigError(f"{path}: not a usable YAML value: {one_line(str(exc) or type(exc).__name__)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings, got {type(data).__name__}")
    return data


def apply_overrides(cfg: T, overrides: Mapping[str, Any]) -> T:
    """Set dotted keys (``decision.k``, ``model.variant``) through the same validation as the file.

    Every key given is set (None sets a key to null); an unknown key is an error naming it. Flags that
    were not given are not in ``overrides`` at all (``flag_overrides``).
    """
    if not overrides:
        return cfg
    tree = to_dict(cfg)
    for key, value in overrides.items():
        node = tree
        *parents, leaf = key.split(".")
        for i, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown key {'.'.join(parents[: i + 1])}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"unknown key {key}")
        node[leaf] = str(value) if isinstance(value, Path) else value
    return from_dict(type(cfg), tree)


def read_sections(
    path: str | Path | None, schema: Mapping[str, type], ignore: Iterable[str] = ()
) -> dict[str, Any]:
    """One config file's sections, each as its frozen dataclass (the defaults where a section is absent).

    ``schema`` maps section names to their dataclasses; sections named in ``ignore`` belong to other
    commands and are passed over; any other section is an error naming it. Errors name the file.
    """
    return sections_from(load_yaml(path) if path is not None else {}, schema, ignore, path)


def sections_from(
    data: Mapping[str, Any], schema: Mapping[str, type], ignore: Iterable[str] = (), path: str | Path | None = None
) -> dict[str, Any]:
    """``read_sections`` of a file already read with ``load_yaml`` (``path`` names it in errors)."""
    where = f"{path}: " if path is not None else ""
    accepted = [*schema, *ignore]
    unknown = sorted(map(key_name, set(data) - set(accepted)))
    if unknown:
        raise ConfigError(f"{where}unknown section {unknown[0]!r}; accepted sections: {', '.join(accepted)}")
    out = {}
    for name, cls in schema.items():
        try:
            out[name] = from_dict(cls, data.get(name), prefix=f"{name}.")
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from exc
    return out


def flag_overrides(args: argparse.Namespace, table: Mapping[str, str]) -> dict[str, Any]:
    """The command-line flags that were given, as dotted config keys.

    ``table`` maps an argparse destination to the dotted key it overrides. Such flags are declared with
    ``default=argparse.SUPPRESS``, so a flag that was not given is absent from ``args`` (the one idiom for
    "not given": a flag's own default can never hide the file's value).
    """
    return {key: getattr(args, dest) for dest, key in table.items() if hasattr(args, dest)}
