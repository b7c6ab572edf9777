"""edge-asc demo: scenes through a real daemon subprocess and its Unix socket, tallied, then enrolled and played again.

The audio here is synthetic (tests/audio_gen.py, with the tiny fixture model); the fetcher of the real demo
audio from Debian's archive is tested in tests/test_demo_audio.py.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

import audio_gen
from edge_asc.commands import demo
from edge_asc.commands.demo import Tally, join, run_demo, true_scene
from edge_asc.demo_audio import DemoAudioUnavailable, Place


def generated_places(seconds: float = 6.0) -> list[Place]:
    return [Place(label, audio_gen.scene(label, seconds, seed=audio_gen.CLIP_SEED), ()) for label in audio_gen.LABELS]


def test_scenes_are_joined_end_to_end_and_straddling_decisions_are_marked():
    audio, clips = join([(p.label, p.audio) for p in generated_places()], 16000)
    assert audio.shape[0] == 3 * 6 * 16000
    first, second = clips[0], clips[1]
    assert second.start_s == pytest.approx(first.end_s) == pytest.approx(6.0)
    assert true_scene(clips, first.start_s, first.start_s + 0.9) == first.label
    assert true_scene(clips, first.end_s - 0.3, first.end_s + 0.6) == f"{first.label}->{second.label}"


def test_the_tally_scores_each_scene_and_leaves_straddling_decisions_out():
    result = Tally()
    for truth, heard in (("rain", "rain"), ("rain", "wind"), ("wind", "wind"), ("rain->wind", "wind")):
        result.add(truth, heard)
    assert (result.hits, result.total, result.straddling) == (2, 3, 1)
    assert result.summary().startswith("2/3 decisions right (67%); 1 straddle")
    assert result.lines()[0].split() == ["rain", "1/2", "also", "heard:", "wind", "1"]


def test_demo_prints_every_scene_event_with_its_true_scene_then_the_tally_before_and_after_enrolment(tiny_artifacts):
    out = io.StringIO()
    places = generated_places()
    code = run_demo(realtime=False, k=3, model=tiny_artifacts.model, index=tiny_artifacts.index, out=out, as_json=True,
                    places=places, enrol_seconds=3.0)  # fmt: skip
    assert code == 0, out.getvalue()
    text = out.getvalue().splitlines()
    events = [json.loads(line) for line in text if not line.startswith("#")]
    first_pass = events[: int(18.0 / 0.3) // 3]  # a decision every 3 x 300 ms, none missed (the daemon waits for us)
    second_pass = events[len(first_pass):]
    assert len(second_pass) == int(9.0 / 0.3) // 3  # the last 3 s of each scene, played again
    _, clips = join([(p.label, p.audio) for p in places], 16000)
    for line in first_pass:
        event = line["event"]
        assert event["type"] == "scene" and event["label"] in tiny_artifacts.labels
        assert line["true_scene"] == true_scene(clips, event["stream_start_s"], event["stream_end_s"])
    comments = [line for line in text if line.startswith("#")]
    assert any(line.startswith("# tally: ") for line in comments)
    assert sum(line.startswith("# enrolled ") for line in comments) == 3
    before = next(line for line in comments if line.startswith("# before enrolment"))
    after = next(line for line in comments if line.startswith("# after enrolment"))
    scored = sum(1 for e in first_pass if "->" not in e["true_scene"] and e["event"]["stream_start_s"] % 6.0 >= 3.0)
    assert f"/{scored} decisions right" in before
    assert f"/{len(second_pass) - 2} decisions right" in after  # two decisions straddle the three scenes


def test_the_enrolment_uses_a_temporary_folder_never_the_users(tiny_artifacts, tmp_path, monkeypatch):
    users = tmp_path / "users-enrolled"
    monkeypatch.setenv("EDGE_ASC_ENROLLED", str(users))
    out = io.StringIO()
    assert run_demo(realtime=False, model=tiny_artifacts.model, index=tiny_artifacts.index, out=out,
                    places=generated_places(4.0), enrol_seconds=2.0) == 0  # fmt: skip
    assert not users.exists()


def test_without_debians_archive_the_demo_says_in_one_line_how_to_run_on_a_file_or_the_microphone(tiny_artifacts, monkeypatch, caplog):
    def unavailable(*args, **kwargs):
        raise DemoAudioUnavailable("apt-get is not available to fetch minetest-data from Debian's archive")

    monkeypatch.setattr(demo, "load_places", unavailable)
    with caplog.at_level(logging.ERROR):
        code = run_demo(realtime=False, model=tiny_artifacts.model, index=tiny_artifacts.index, out=io.StringIO())
    assert code == 3
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message and "apt-get is not available" in message
    assert "edge-asc classify FILE" in message and "--source mic" in message
