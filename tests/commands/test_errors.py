"""Errors a new user meets end in one line that says what is wrong, with a consistent exit status."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import soundfile as sf

from edge_asc.cli import build_parser, main


def _only_error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_missing_sound_file_is_not_found_not_a_system_error(tiny_artifacts, tmp_path, capsys):
    missing = tmp_path / "nowhere.flac"
    rc = main(["classify", str(missing), "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)])
    err = capsys.readouterr().err
    assert rc == 2
    assert _only_error_lines(err) == [f"ERROR edge_asc.commands.classify: {missing}: cannot read audio (not found)"]


def test_a_directory_without_sound_files_is_named_as_such(tiny_artifacts, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not audio")
    rc = main(["classify", str(tmp_path), "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)])
    assert rc == 2 and f"{tmp_path}: no sound files (" in capsys.readouterr().err


def test_training_on_one_class_is_one_line_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("torch")
    data = tmp_path / "data" / "rain"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(str(data / "a.flac"), (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32), 16000)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "1", "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "training needs at least two classes, found 1 (rain)" in err and "Traceback" not in err
    assert not out.exists()


def test_devices_exits_the_same_with_and_without_json_when_there_is_no_device(monkeypatch, capsys):
    from edge_asc.daemon import mic

    monkeypatch.setattr(mic, "list_input_devices", lambda rescan=False: [])
    assert main(["devices"]) == main(["devices", "--json"]) == 1
    assert "no audio input device found" in capsys.readouterr().err


def test_help_shows_each_default_once_and_none_for_flags_without_one():
    from edge_asc.cli import HelpFormatter

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert "(default: None)" not in command.format_help(), name
        formatter = HelpFormatter(name)
        for action in command._actions:
            text = formatter._get_help_string(action)
            assert text.count("(default:") <= 1, f"{name} {action.option_strings}: {text}"


def test_a_k_longer_than_the_file_is_a_warning_not_silence(tiny_artifacts, capsys):
    clip = tiny_artifacts.clips["rain"]  # 6 s: 20 segments
    rc = main(["classify", str(clip), "--k", "30", "--json", "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)])
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == ""
    assert "are fewer than k=30 (9.0 s): no decision; use a smaller --k" in captured.err


def test_a_training_command_without_the_training_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # as on the device install: import torch fails
    for name in [m for m in sys.modules if m.startswith("edge_asc.training.") and m != "edge_asc.training.config"]:
        monkeypatch.delitem(sys.modules, name)
    (tmp_path / "a").mkdir()
    rc = main(["export", str(tmp_path / "a"), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "edge-asc export needs the training extra, which this installation lacks (no module torch)" in err


def test_classify_on_three_seconds_of_digital_silence_decides_silence_not_a_scene(tiny_artifacts, tmp_path, capsys):
    quiet = tmp_path / "silence.wav"
    sf.write(str(quiet), np.zeros(16000 * 3, dtype=np.float32), 16000)
    rc = main(["classify", "--json", str(quiet), "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert rc == 0 and len(lines) == 3  # 10 segments, k=3
    import json

    events = [json.loads(line) for line in lines]
    assert {(e["label"], e["confidence"]) for e in events} == {("silence", 1.0)}
    assert all(e["evidence"] == [] for e in events)


def test_the_level_gate_switched_off_in_the_config_lets_silence_through_to_the_encoder(tiny_artifacts, tmp_path, capsys):
    import json

    quiet = tmp_path / "silence.wav"
    sf.write(str(quiet), np.zeros(16000 * 3, dtype=np.float32), 16000)
    config = tmp_path / "c.yaml"
    config.write_text("decision:\n  silence_dbfs: null\n")
    rc = main(["classify", "--json", str(quiet), "--config", str(config), "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert rc == 0 and len(events) == 3
    assert all(e["label"] in tiny_artifacts.labels for e in events)  # a scene, as before the gate


def test_silence_is_a_reserved_label_for_enrolment(tiny_artifacts, capsys):
    rc = main(["enroll", "--label", "silence", str(tiny_artifacts.clips["rain"]), "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)])
    assert rc == 2 and "label 'silence' is reserved for segments below the level gate" in capsys.readouterr().err


def test_stdin_as_the_source_with_standard_input_closed_is_one_line_and_exit_2(tiny_artifacts, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import WRAPPER

    r = subprocess.run(
        [sys.executable, "-c", WRAPPER, "run", "--source", "stdin", "--socket", str(tmp_path / "s.sock"),
         "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)],
        preexec_fn=lambda: os.close(0), capture_output=True, text=True, timeout=60,
    )
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("HEAVY_MODULES=")]
    assert r.returncode == 2, r.stderr
    assert lines == ["ERROR edge_asc.commands.run: --source stdin: standard input is not open; pipe raw PCM into edge-asc run"]


def test_a_manifest_of_invalid_utf8_is_one_line_and_exit_2(tiny_artifacts, tmp_path, capsys):
    import shutil

    index = tmp_path / "index"
    shutil.copytree(tiny_artifacts.index, index)
    (index / "manifest.json").write_bytes(b'{"format": 1, "labels": ["\xff"]}')
    rc = main(["classify", str(tiny_artifacts.clips["rain"]), "--model", str(tiny_artifacts.model), "--index", str(index)])
    lines = _only_error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and "manifest.json: index manifest is not UTF-8 text (byte 26 is 0xff)" in lines[0]
