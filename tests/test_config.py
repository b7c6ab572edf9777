"""edge_asc.config: the one loader every command uses (sections, dotted overrides, flag tables)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_asc.commands import build_index, evaluate, run, train
from edge_asc.config import ConfigError, apply_overrides, flag_overrides, from_dict, read_sections


@dataclass(frozen=True)
class Inner:
    size: int = 3
    name: str = field(default="a", metadata={"choices": ("a", "b")})


@dataclass(frozen=True)
class Outer:
    rate: float = 1.0
    inner: Inner = Inner()


def test_an_unknown_key_is_refused_naming_it_and_the_accepted_keys():
    with pytest.raises(ConfigError, match=r"unknown key inner\.colour; accepted keys: inner\.size, inner\.name"):
        from_dict(Outer, {"inner": {"colour": 1}})


def test_a_value_outside_its_choices_names_the_accepted_values():
    with pytest.raises(ConfigError, match=r"name: 'c' is not accepted; accepted values: a, b"):
        from_dict(Inner, {"name": "c"})


def test_dotted_overrides_go_through_the_same_validation_as_the_file():
    cfg = apply_overrides(Outer(), {"inner.size": 5})
    assert cfg == Outer(inner=Inner(size=5))
    with pytest.raises(ConfigError, match="inner.size: expected an integer"):
        apply_overrides(Outer(), {"inner.size": "five"})


def test_an_unknown_dotted_override_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"unknown key inner\.colour"):
        apply_overrides(Outer(), {"inner.colour": 2})
    with pytest.raises(ConfigError, match=r"unknown key rate"):
        apply_overrides(Outer(), {"rate.x": 2})


def test_sections_absent_from_the_file_take_their_defaults_and_an_unknown_section_is_named(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("outer:\n  rate: 2.5\nother: {}\n")
    sections = read_sections(path, {"outer": Outer, "inner": Inner}, ignore=("other",))
    assert sections == {"outer": Outer(rate=2.5), "inner": Inner()}
    with pytest.raises(ConfigError, match=rf"{path}: unknown section 'other'; accepted sections: outer, inner"):
        read_sections(path, {"outer": Outer, "inner": Inner})
    path.write_text("outer:\n  rate: fast\n")
    with pytest.raises(ConfigError, match=rf"{path}: outer.rate: expected a number"):
        read_sections(path, {"outer": Outer})


def test_flags_that_were_not_given_do_not_override_the_file():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=argparse.SUPPRESS)
    table = {"size": "inner.size", "rate": "rate"}
    assert flag_overrides(parser.parse_args(["--size", "7"]), table) == {"inner.size": 7}
    assert flag_overrides(parser.parse_args([]), table) == {}


@pytest.mark.parametrize("command", [run, train, build_index, evaluate])
def test_every_flag_table_names_a_real_config_key(command):
    """Each command's flag table maps argparse destinations to keys its config accepts."""
    from edge_asc.daemon.config import DaemonConfig
    from edge_asc.evaluation.config import EvalConfig
    from edge_asc.training.build_index import IndexConfig
    from edge_asc.training.config import TrainConfig

    config = {run: DaemonConfig(), train: TrainConfig(), build_index: IndexConfig(), evaluate: EvalConfig()}[command]
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    dests = {a.dest for a in parser._actions}
    for dest, key in command.FLAGS.items():
        assert dest in dests, f"{command.__name__}: no flag with destination {dest}"
        value = config
        for part in key.split("."):
            value = getattr(value, part)  # AttributeError: the table names a key that does not exist


def test_every_flag_that_may_override_a_setting_is_in_its_commands_table():
    """A flag declared with SUPPRESS but missing from FLAGS would be silently ignored."""
    for command in (run, train, build_index, evaluate):
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        suppressed = {a.dest for a in parser._actions if a.default is argparse.SUPPRESS and a.dest != "help"}
        assert suppressed == set(command.FLAGS), command.__name__


def test_a_flag_beats_the_file_and_the_file_beats_the_default(tmp_path: Path):
    from edge_asc.cli import build_parser
    from edge_asc.commands.common import train_config_from_file
    from edge_asc.config import apply_overrides, flag_overrides

    path = tmp_path / "t.yaml"
    path.write_text("train:\n  epochs: 5\n  lr: 0.01\nmodel:\n  hidden_size: 32\n")
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--config", str(path), "--epochs", "3", "--no-augment"])
    config = apply_overrides(train_config_from_file(args.config), flag_overrides(args, train.FLAGS))
    assert (config.epochs, config.lr, config.model.hidden_size, config.augment.enabled) == (3, 0.01, 32, False)
    assert config.batch_size == 64  # the default: neither the file nor a flag set it


# --- hostile files: one line, bounded memory ---------------------------------------------------------

from edge_asc.config import MAX_INT_BITS, load_yaml  # noqa: E402
from edge_asc.daemon.config import load_config  # noqa: E402

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
) + "source: [*i, *i]\n"


@pytest.mark.parametrize(
    "content, message",
    [
        (BILLION_LAUGHS.encode(), "found the alias \\*a: aliases are not accepted in config files"),
        (b"source: \xff\n", r"config file is not UTF-8 text \(byte 8 is 0xff\)"),
        (b"decision: " + b"[" * 50_000 + b"]" * 50_000, "nested more than 32 levels deep"),
        ("".join(" " * i + f"a{i}:\n" for i in range(40)).encode(), "nested more than 32 levels deep"),
        (b"decision:\n  k: " + b"7" * 5000, "not a usable YAML value"),
        (b"decision:\n  k: " + b"7" * 4000, "decision.k: <an integer of 13288 bits> is beyond any setting's range"),
        (b"source: " + b"x" * 2_000_000, "config file larger than 1048576 bytes; refused unread"),
        (b"source: " + b"x" * 900_000, r"source 'xxxx.*' is not accepted"),
        (b"? " + b"x" * 900_000 + b"\n: 1", "unknown key xxxx"),
    ],
    ids=["billion-laughs", "not-utf8", "deep-flow", "deep-block", "5000-digits", "4000-digits", "2-MB", "900-kB-value", "900-kB-key"],
)
def test_a_hostile_config_file_is_one_short_line(tmp_path, content, message):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    text = str(info.value)
    assert "\n" not in text and len(text) < 600 and text.startswith(f"{path}: ")


def test_the_billion_laughs_is_refused_before_it_expands(tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)  # 2 x 9^8 = 86 million strings once expanded
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="aliases are not accepted"):
            load_config(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MB while loading a 1 kB file"


def test_an_integer_setting_longer_than_64_bits_is_refused_without_printing_it():
    with pytest.raises(ConfigError, match="beyond any setting's range"):
        from_dict(Outer, {"inner": {"size": 1 << (MAX_INT_BITS + 1)}})


def test_the_cli_reports_a_hostile_config_in_one_line_with_exit_2(tmp_path, capsys):
    from edge_asc.cli import main

    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    assert main(["run", "--config", str(path), "--check-config"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "aliases are not accepted" in lines[0]


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
YAML_PIECES = st.sampled_from(["source: ", "decision:\n  k: ", "audio:\n", "  ", "- ", "[", "]", "{", "}", "&a ", "*a", "\xff",
                               "9" * 30, "1e9", "null", "mic", ": ", "\n", "? ", "!!python/object ", "'", '"', ","])


@FUZZ
@given(pieces=st.lists(YAML_PIECES, max_size=40), tail=st.binary(max_size=40))
def test_fuzzed_config_files_load_or_fail_in_one_line(tmp_path_factory, pieces, tail):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_bytes("".join(pieces).encode("utf-8", "surrogateescape") + tail)
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
