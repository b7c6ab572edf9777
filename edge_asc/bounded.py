"""Bounded reading of untrusted text: size limits before parsing, UTF-8, nesting depth, short quotes.

Config files, index manifests, ONNX metadata and protocol lines come from people and programs the
daemon does not control. Everything here is bounded in memory and time by the size of the input, never
by what the input claims: a file is read only up to its limit (a bigger one is refused before any
parsing), JSON nested deeper than a limit is refused (Python's parser would recurse until it fails),
and an error message quotes at most a few dozen characters of a value (``cut``), whatever its size, so
a hostile value never becomes a hostile log line. Callers pass the exception class their layer raises
(ConfigError, ArtifactError), so every refusal is one line naming the file.
"""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any

MAX_TEXT_FILE_BYTES = 1 << 20  # a config file or a manifest: real ones are a few kB
MAX_DEPTH = 32  # nesting of mappings/lists in a config file, a manifest or metadata (real ones: 3)
QUOTE_CHARS = 60  # the longest quote of a value in an error message
MESSAGE_CHARS = 400  # the longest error message built from untrusted text
_BIG_INT_BITS = 128  # integers longer than this are described by their size, not printed


class _ShortRepr(reprlib.Repr):
    """reprlib with small limits, and integers described rather than converted to decimal (a
    5,000-digit integer's repr raises ValueError under Python's int-to-str limit)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = self.maxlong = QUOTE_CHARS
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 6

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > _BIG_INT_BITS:
            return f"<an integer of {x.bit_length()} bits>"
        return repr(x)


_SHORT = _ShortRepr()


def cut(value: Any) -> str:
    """A short repr of ``value`` for an error message: at most about QUOTE_CHARS characters of any
    string, a few items of any container, three levels deep; never the whole of a hostile value."""
    try:
        text = _SHORT.repr(value)
    except Exception:  # a repr that fails (an odd object): its type is enough
        text = f"<{type(value).__name__}>"
    return one_line(text, 2 * QUOTE_CHARS)


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line (newlines and runs of blanks become one space), cut to ``limit`` characters."""
    flat = " ".join(str(text)[: 4 * limit].split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def read_text(path: str | Path, error: type[Exception], what: str = "file", limit: int = MAX_TEXT_FILE_BYTES) -> str:
    """The UTF-8 text of ``path``; ``error`` (one line naming the file) when it cannot be read, is larger
    than ``limit`` bytes (refused before anything is parsed) or is not UTF-8."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path}: {what} larger than {limit} bytes; refused unread")
    return decode_utf8(data, error, f"{path}: {what}")


def decode_utf8(data: bytes, error: type[Exception], where: str) -> str:
    """``data`` as UTF-8 text, or ``error`` naming ``where`` and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})") from None


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists/tuples/dicts in ``value`` (a scalar is 0), counted without recursion;
    stops counting at ``limit + 1``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def load_json(text: str, error: type[Exception], where: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` as JSON; ``error`` naming ``where`` when it is not JSON or is nested deeper than
    ``max_depth``. Numbers stay as Python reads them (ranges are the caller's to check)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise error(f"{where} is nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # an integer too long for Python's int-from-str limit
        raise error(f"{where} is not usable JSON ({one_line(str(exc), 120)})") from None
    if depth(value, max_depth) > max_depth:
        raise error(f"{where} is nested more than {max_depth} levels deep")
    return value
