"""``edge-asc classify`` over many files and directories: each file's output is its own run's."""

from __future__ import annotations

import json

import soundfile as sf

import audio_gen
from edge_asc.cli import main


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = main(["classify", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_several_files_and_a_directory_give_each_files_own_decisions_in_one_call(tiny_artifacts, tmp_path, capsys):
    art = ["--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index)]
    folder = tmp_path / "recordings"
    (folder / "sub").mkdir(parents=True)
    paths = [folder / "b_rain.wav", folder / "sub" / "a_traffic.flac", tmp_path / "birds.wav"]
    for path, name in zip(paths, ("rain", "street_traffic", "forest_birds")):
        sf.write(str(path), audio_gen.scene(name, 3.0, 5, 44100 if path.suffix == ".flac" else 16000), 44100 if path.suffix == ".flac" else 16000)
    (folder / "readme.txt").write_text("not audio")
    alone = {}
    for path in paths:
        rc, out, _ = _run(capsys, str(path), *art)
        assert rc == 0 and out.count("\n") >= 4
        alone[path] = out
    rc, out, _ = _run(capsys, str(paths[2]), str(folder), *art)
    assert rc == 0
    order = [paths[2], paths[0], paths[1]]  # as given; a directory's files sorted by path
    assert out == "".join(f"== {p}\n{alone[p]}" for p in order)
    rc, out, _ = _run(capsys, "--json", str(paths[2]), str(folder), *art)
    events = [json.loads(line) for line in out.splitlines()]
    for p in order:
        _, single, _ = _run(capsys, "--json", str(p), *art)
        strip = ("wall_time", "latency_ms", "file")
        expected = [{k: v for k, v in json.loads(line).items() if k not in strip} for line in single.splitlines()]
        assert [{k: v for k, v in e.items() if k not in strip} for e in events if e["file"] == str(p)] == expected


def test_a_bad_file_among_several_is_named_and_the_others_are_classified(tiny_artifacts, tmp_path, capsys):
    good = tmp_path / "rain.wav"
    sf.write(str(good), audio_gen.scene("rain", 2.0, 5), 16000)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....not a wav")
    rc, out, err = _run(capsys, str(bad), str(good), "--model", str(tiny_artifacts.model), "--index", str(tiny_artifacts.index))
    assert rc == 2 and "broken.wav: cannot read audio" in err and "Traceback" not in err
    assert f"== {good}\n" in out and "all 6 segments" in out


def test_the_progress_line_names_the_file_and_the_audio_done_and_is_cleared(tmp_path, capsys):
    from edge_asc.commands.classify import Progress

    files = [tmp_path / "a.flac", tmp_path / "b.flac"]
    p = Progress(files)
    p.start(files[0], 60.0)
    p.update(30.0, force=True)
    p.clear()
    p.start(files[1], 10.0)
    p.update(10.0, force=True)
    p.clear()
    err = capsys.readouterr().err
    assert "\rfile 1/2 a.flac: 30/60 s of audio (" in err and "\rfile 2/2 b.flac: 10/10 s of audio (" in err
    assert err.endswith("\r") and p.done_before == 40.0  # the line is blanked at the end
