"""Bounded reading of untrusted text: size before parsing, UTF-8, depth, and short quotes of any value."""

from __future__ import annotations

import pytest

from edge_asc.bounded import MAX_DEPTH, QUOTE_CHARS, cut, depth, load_json, one_line, read_text


class Refused(ValueError):
    pass


def test_a_quote_of_a_huge_string_is_short():
    assert len(cut("x" * 5_000_000)) <= 2 * QUOTE_CHARS


def test_a_quote_of_a_5000_digit_integer_says_its_size_instead_of_failing():
    assert cut(7 ** 6000) == f"<an integer of {(7 ** 6000).bit_length()} bits>"
    assert cut(12345) == "12345"


def test_a_quote_of_a_container_with_a_billion_shared_items_is_short_and_quick():
    laugh = ["lol"] * 10
    for _ in range(8):  # 10^9 leaves when expanded, a few kB of shared lists
        laugh = [laugh] * 10
    assert len(cut({"k": laugh})) <= 2 * QUOTE_CHARS


def test_one_line_joins_lines_and_cuts():
    assert one_line("a\n  b\r\nc") == "a b c"
    assert one_line("y" * 1000, 50) == "y" * 47 + "..."


def test_a_file_over_the_limit_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a" * 101)
    with pytest.raises(Refused, match=r"big.yaml: config larger than 100 bytes; refused unread"):
        read_text(path, Refused, "config", limit=100)
    assert read_text(path, Refused, "config", limit=101) == "a" * 101


def test_a_file_that_is_not_utf8_is_refused_naming_the_byte(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(Refused, match=r"bad.json: manifest is not UTF-8 text \(byte 7 is 0xff\)"):
        read_text(path, Refused, "manifest")


def test_depth_counts_without_recursion():
    deep = []
    for _ in range(100_000):
        deep = [deep]
    assert depth(deep, MAX_DEPTH) == MAX_DEPTH + 1
    assert depth({"a": [1, {"b": 2}]}) == 3 and depth(5) == 0


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 33 + "]" * 33, '{"a":' * 40 + "1" + "}" * 40])
def test_json_nested_beyond_the_limit_is_refused(text):
    with pytest.raises(Refused, match=f"m.json is nested more than {MAX_DEPTH} levels deep"):
        load_json(text, Refused, "m.json")


def test_json_with_a_number_too_long_for_python_is_refused():
    with pytest.raises(Refused, match="m.json is not usable JSON"):
        load_json("[" + "9" * 5000 + "]", Refused, "m.json")
