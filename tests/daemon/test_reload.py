"""A running daemon picks up enrolments made on disk (daemon/reload.py): the watcher, and a real daemon
subprocess fed over stdin while `edge-asc enroll` / `forget` run beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge_asc.daemon.reload import OverlayWatcher
from edge_asc.dsp.audio_io import read_audio
from edge_asc.protocol.client import Client
from edge_asc.protocol.messages import Scene, Segment
from edge_asc.runtime.enrol import enrol, forget
from edge_asc.runtime.enrolled import EnrolledSet
from edge_asc.runtime.pipeline import load_artifacts

from conftest import WRAPPER

RATE = 16000


def _store_args(art, enrolled) -> list[str]:
    return ["--model", str(art.model), "--index", str(art.index), "--enrolled", str(enrolled)]


def _pcm(path) -> bytes:
    return (np.clip(read_audio(path, RATE), -1, 1) * 32767).astype("<i2").tobytes()


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_watcher_sees_an_enrolment_and_a_forget_and_builds_the_searcher_to_swap_in(tiny_artifacts, tmp_path):
    encoder, searcher = load_artifacts(tiny_artifacts.model, tiny_artifacts.index, enrolled_path=tmp_path / "en")
    watcher = OverlayWatcher(tmp_path / "en", encoder.meta)
    assert not watcher.changed()
    enrol(tmp_path / "en", encoder, "kitchen", [("rain.flac", read_audio(tiny_artifacts.clips["rain"], RATE))])
    assert watcher.changed()
    new = watcher.load(searcher)
    assert new.labels == tiny_artifacts.labels + ("kitchen", "silence") and len(new) > len(searcher)
    assert not watcher.changed()
    forget(tmp_path / "en", "kitchen")
    assert watcher.changed() and watcher.load(new).labels == tiny_artifacts.labels + ("silence",)


def test_a_store_that_cannot_be_read_keeps_the_current_one_and_says_why_once(tiny_artifacts, tmp_path):
    encoder, searcher = load_artifacts(tiny_artifacts.model, tiny_artifacts.index, enrolled_path=tmp_path / "en")
    enrol(tmp_path / "en", encoder, "kitchen", [("rain.flac", read_audio(tiny_artifacts.clips["rain"], RATE))])
    watcher = OverlayWatcher(tmp_path / "en", encoder.meta)
    (tmp_path / "en" / "manifest.json").write_text("{ not json")
    assert watcher.changed()
    reason = watcher.load(searcher)
    assert isinstance(reason, str) and "not reloaded" in reason and "not valid JSON" in reason
    assert not watcher.changed()  # reported once, not at every poll


def _two_item_piece(meta):
    from edge_asc.runtime.enrol import Piece

    emb = np.random.default_rng(0).normal(size=(2, meta.embedding_size)).astype(np.float32)
    return Piece("tiny.flac", 0.6, emb, np.array([0.0, 0.3]))


def test_an_overlay_smaller_than_decision_neighbours_keeps_the_current_one_and_the_worker_swap_never_raises(tiny_artifacts, tmp_path):
    from edge_asc.runtime.decision import DecisionPolicy
    from edge_asc.runtime.enrol import enrol_embeddings
    from edge_asc.runtime.pipeline import Pipeline

    en = tmp_path / "en"
    encoder, searcher = load_artifacts(tiny_artifacts.model, tiny_artifacts.index, enrolled_path=en, enrolled_only=True)
    enrol(en, encoder, "kitchen", [("rain.flac", read_audio(tiny_artifacts.clips["rain"], RATE))])
    watcher = OverlayWatcher(en, encoder.meta)
    searcher = watcher.load(searcher, 3)
    pipeline = Pipeline(encoder, searcher, DecisionPolicy(len(searcher.labels), 1), neighbours=3)
    forget(en, "kitchen")
    enrol_embeddings(en, encoder.meta, "hall", [_two_item_piece(encoder.meta)])  # 2 items < 3 neighbours
    reason = watcher.load(searcher, pipeline.neighbours)
    assert isinstance(reason, str) and "not reloaded" in reason and "neighbours" in reason and "got 3" in reason
    small = searcher.with_enrolled(EnrolledSet.load(en))  # what an unchecked reload would have handed over
    assert pipeline.swap_index(small) is False and pipeline.index is searcher  # no ValueError on the worker
    assert len(list(pipeline.push(read_audio(tiny_artifacts.clips["rain"], RATE)[:9600]))) == 2


def test_forgetting_the_last_place_with_enrolled_only_swaps_in_a_searcher_that_decides_unknown(tiny_artifacts, tmp_path):
    from edge_asc.daemon.events import scene_event
    from edge_asc.runtime.decision import DecisionPolicy
    from edge_asc.runtime.pipeline import Pipeline

    en = tmp_path / "en"
    encoder, _ = load_artifacts(tiny_artifacts.model, tiny_artifacts.index)
    enrol(en, encoder, "kitchen", [("rain.flac", read_audio(tiny_artifacts.clips["rain"], RATE))])
    _, searcher = load_artifacts(tiny_artifacts.model, tiny_artifacts.index, enrolled_path=en, enrolled_only=True)
    pipeline = Pipeline(encoder, searcher, DecisionPolicy(len(searcher.labels), 2), neighbours=1)
    watcher = OverlayWatcher(en, encoder.meta)
    forget(en, "kitchen")
    empty = watcher.load(searcher, pipeline.neighbours)  # "no places are enrolled" before: the daemon kept a place it had forgotten
    assert not isinstance(empty, str), empty
    assert pipeline.swap_index(empty) and empty.labels == tiny_artifacts.labels + ("unknown", "silence")
    decisions = [d for _, d in pipeline.push(read_audio(tiny_artifacts.clips["rain"], RATE)) if d is not None]
    events = [scene_event(d, pipeline.labels, RATE) for d in decisions]
    assert events and all(e.label == "unknown" and e.evidence == () and e.unknown is None for e in events)
    # and a restart with nothing enrolled starts (it exited 2 before)
    _, restarted = load_artifacts(tiny_artifacts.model, tiny_artifacts.index, enrolled_path=en, enrolled_only=True)
    assert len(restarted) == 0 and restarted.max_neighbours > 0


@pytest.mark.parametrize("k", [1, 3])
def test_a_running_daemon_picks_up_a_cli_enrolment_with_no_lost_or_doubled_decision(tiny_artifacts, runtime_env, tmp_path, daemons, k):
    art, enrolled = tiny_artifacts, tmp_path / "en"
    d = daemons(tmp_path, runtime_env, ["--source", "stdin", "--k", str(k), *_store_args(art, enrolled)], stdin=subprocess.PIPE)
    d.wait_listening()
    before, after = _pcm(art.clips["rain"]), _pcm(art.clips["street_traffic"])
    with Client(str(d.socket), timeout=60) as client:
        client.subscribe(["scene", "segment"])
        events: list = []
        reader = threading.Thread(target=lambda: [events.append(e) for e in client])
        reader.start()
        d.proc.stdin.write(before)
        d.proc.stdin.flush()
        n_before = len(before) // 2 // 4800
        _wait_for(lambda: sum(isinstance(e, Segment) for e in events) >= n_before, "the first clip's segments")
        run = subprocess.run([sys.executable, "-c", WRAPPER, "enroll", "--label", "kitchen", str(art.clips["street_traffic"]), *_store_args(art, enrolled)],
                             env=runtime_env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        _wait_for(lambda: "enrolled places reloaded" in d.log(), "the reload")
        d.proc.stdin.write(after)
        d.proc.stdin.close()
        reader.join(60)
    assert d.wait() == 0, d.log()
    segments = [e.index for e in events if isinstance(e, Segment)]
    scenes = [e for e in events if isinstance(e, Scene)]
    assert segments == list(range(len(segments))) and len(segments) >= (len(before) + len(after)) // 2 // 4800 - 1
    assert [s.segment_index for s in scenes] == list(range(k - 1, len(segments), k))  # every window once, in order
    late = [s.label for s in scenes if s.segment_index >= n_before + 2 * k]
    assert late and late.count("kitchen") / len(late) > 0.8, late
    assert "kitchen" not in [s.label for s in scenes if s.segment_index < n_before]


def test_sighup_reloads_the_enrolled_places_and_does_not_stop_the_daemon(tiny_artifacts, runtime_env, tmp_path, daemons):
    art, enrolled = tiny_artifacts, tmp_path / "en"
    d = daemons(tmp_path, runtime_env, ["--source", "stdin", *_store_args(art, enrolled)], stdin=subprocess.PIPE)
    d.wait_listening()
    _wait_for(lambda: "ready:" in d.log(), "the daemon to be ready")
    os.kill(d.proc.pid, signal.SIGHUP)
    _wait_for(lambda: "enrolled places reloaded" in d.log(), "the reload")
    assert d.proc.poll() is None
    with Client(str(d.socket), timeout=30) as client:
        assert client.hello.enrolled == ()
    d.proc.stdin.close()
    assert d.wait() == 0, d.log()
