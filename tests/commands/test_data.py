"""``edge-asc data debian``: its errors, one line each with the usual exit status. The real build (a
download from Debian's archive) is tested in tests/test_debian_ambient.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_asc.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "debian_minetest.csv"


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_without_apt_get_the_build_says_so_and_how_to_get_the_data_otherwise(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    rc = main(["data", "debian", "--out", str(tmp_path / "out"), "--manifest", str(FIXTURE), "--cache-dir", str(tmp_path / "cache")])
    err = error_lines(capsys.readouterr().err)
    assert rc == 3 and len(err) == 1
    assert "apt-get is not available" in err[0] and "a container of debian:12" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_list_that_cannot_be_read_is_a_configuration_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "nowhere.csv"
    rc = main(["data", "debian", "--out", str(tmp_path / "out"), "--manifest", str(missing)])
    assert rc == 2 and error_lines(capsys.readouterr().err) == [f"ERROR edge_asc.commands.data: {missing}: cannot read ([Errno 2] No such file or directory: '{missing}')"]


def test_an_output_folder_holding_other_files_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc = main(["data", "debian", "--out", str(out), "--manifest", str(FIXTURE), "--cache-dir", str(tmp_path / "cache")])
    err = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(err) == 1 and "holds files but no metadata.csv" in err[0]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_the_builder_loads_no_training_library():
    code = "import sys, edge_asc.cli, edge_asc.commands.data; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'onnx', 'librosa', 'matplotlib'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
