"""edge-asc demo: the bundled clips through a real daemon subprocess and its Unix socket."""

from __future__ import annotations

import csv
import io
import json

import pytest

from edge_asc.commands.demo import DEMO_DIR, load_clips, run_demo, true_scene


def test_bundled_clips_are_real_and_attributed():
    rows = list(csv.DictReader((DEMO_DIR / "clips.csv").open()))
    assert len(rows) == 13 and len({r["label"] for r in rows}) == 13
    for row in rows:
        assert (DEMO_DIR / row["file"]).is_file()
        assert row["license"].strip() and row["source"].strip() and row["origin_path"].strip()
    audio, clips = load_clips(16000)
    assert audio.shape[0] == pytest.approx(sum(float(r["duration_s"]) for r in rows) * 16000, abs=16 * len(rows))
    assert [c.label for c in clips] == [r["label"] for r in rows]
    assert clips[1].start_s == pytest.approx(clips[0].end_s)


def test_true_scene_marks_decisions_that_straddle_two_clips():
    _, clips = load_clips(16000)
    first, second = clips[0], clips[1]
    assert true_scene(clips, first.start_s, first.start_s + 0.9) == first.label
    assert true_scene(clips, first.end_s - 0.3, first.end_s + 0.6) == f"{first.label}->{second.label}"


def test_demo_prints_every_scene_event_with_its_true_scene(tiny_artifacts):
    out = io.StringIO()
    code = run_demo(realtime=False, k=3, model=tiny_artifacts.model, index=tiny_artifacts.index, out=out, as_json=True)
    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines() if not line.startswith("#")]
    _, clips = load_clips(16000)
    total_s = clips[-1].end_s
    # a window decision every 3 x 300 ms over the whole joined stream, none missed (the daemon waits for us)
    assert len(lines) == int(total_s / 0.3) // 3
    for line in lines:
        event = line["event"]
        assert event["type"] == "scene" and event["label"] in tiny_artifacts.labels
        assert line["true_scene"] == true_scene(clips, event["stream_start_s"], event["stream_end_s"])
    summary = out.getvalue().splitlines()[-2]
    assert "decisions match the true scene" in summary
