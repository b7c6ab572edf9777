"""Enrolment over the socket (daemon/live_enrol.py): a real daemon subprocess fed over stdin, a real client."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from edge_asc.dsp.audio_io import read_audio
from edge_asc.protocol.client import Client
from edge_asc.protocol.messages import ENROL_REFUSED, Enroll, Enrolled, Enrolling, Error, Forget, Forgotten, Scene, Segment
from edge_asc.runtime.enrolled import EnrolledSet

RATE = 16000


def _pcm(path, repeat: int = 1) -> bytes:
    return (np.clip(np.tile(read_audio(path, RATE), repeat), -1, 1) * 32767).astype("<i2").tobytes()


def _start(art, tmp_path, env, daemons, allow: bool):
    config = tmp_path / "config.yaml"
    config.write_text(f"server:\n  allow_enroll: {str(allow).lower()}\n")
    args = ["--config", str(config), "--source", "stdin", "--k", "1", "--model", str(art.model), "--index", str(art.index), "--enrolled", str(tmp_path / "en")]
    d = daemons(tmp_path, env, args, stdin=subprocess.PIPE)
    d.wait_listening()
    return d


class _Reader:
    """Every event of a client, read on a thread."""

    def __init__(self, client: Client) -> None:
        self.events: list = []
        self.thread = threading.Thread(target=self._read, args=(client,), daemon=True)
        self.thread.start()

    def _read(self, client: Client) -> None:
        try:
            for e in client:
                self.events.append(e)
        except OSError:
            pass  # the test closed the client while this thread was reading

    def wait_for(self, kind, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if isinstance(e, kind)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no {kind.__name__} event; got {[type(e).__name__ for e in self.events]}"
            time.sleep(0.05)


def test_enroll_over_the_socket_remembers_the_live_audio_reports_progress_and_forget_removes_it(tiny_artifacts, runtime_env, tmp_path, daemons):
    art = tiny_artifacts
    d = _start(art, tmp_path, runtime_env, daemons, allow=True)
    street = _pcm(art.clips["street_traffic"])
    with Client(str(d.socket), timeout=60) as client:
        client.subscribe(["scene", "segment"])
        r = _Reader(client)
        client.send(Enroll(label="kitchen", seconds=5.4))  # 18 of the clip's 20 segments
        assert r.wait_for(Enrolling).seconds == 0.0
        d.proc.stdin.write(street)
        d.proc.stdin.flush()
        done = r.wait_for(Enrolled)
        progress = [e.seconds for e in r.events if isinstance(e, Enrolling)]
        assert progress == sorted(progress) and len(progress) >= 3 and progress[-1] < 5.4
        assert done.label == "kitchen" and done.items == 18 and done.seconds == 5.4 and done.threshold > 0 and not done.model_label
        stored = EnrolledSet.load(tmp_path / "en")
        assert stored.counts() == {"kitchen": 18} and stored.manifest.enrolments[0].source == "socket"
        segments_then = sum(isinstance(e, Segment) for e in r.events)
        deadline = time.monotonic() + 30
        while "enrolled places reloaded" not in d.log():
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.05)
        d.proc.stdin.write(street)  # the same place again: now it is known
        d.proc.stdin.flush()
        deadline = time.monotonic() + 30
        while sum(isinstance(e, Segment) for e in r.events) < segments_then + len(street) // 2 // 4800:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        late = [e.label for e in r.events if isinstance(e, Scene) and e.segment_index >= segments_then + 2]
        assert late and late.count("kitchen") / len(late) > 0.8, late
        client.send(Forget(label="kitchen"))
        assert r.wait_for(Forgotten).items == 18
        d.proc.stdin.close()
        r.thread.join(30)
    assert d.wait() == 0, d.log()
    assert EnrolledSet.load(tmp_path / "en").counts() == {}
    segments = [e.index for e in r.events if isinstance(e, Segment)]
    assert segments == list(range(len(segments)))


def test_enroll_and_forget_are_refused_with_a_clear_error_unless_allowed(tiny_artifacts, runtime_env, tmp_path, daemons):
    d = _start(tiny_artifacts, tmp_path, runtime_env, daemons, allow=False)
    with Client(str(d.socket), timeout=30) as client:
        r = _Reader(client)
        client.send(Enroll(label="kitchen", seconds=2.0))
        client.send(Forget(label="kitchen"))
        deadline = time.monotonic() + 30
        while len([e for e in r.events if isinstance(e, Error)]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        errors = [e for e in r.events if isinstance(e, Error)]
        assert [e.code for e in errors] == [ENROL_REFUSED] * 2
        assert "server.allow_enroll" in errors[0].message and errors[0].message.startswith("enroll") and errors[1].message.startswith("forget")
        d.proc.stdin.close()
        r.thread.join(30)
    assert d.wait() == 0, d.log()
    assert not (tmp_path / "en").exists()


def test_a_bad_label_a_second_enrolment_and_silence_are_refused_and_the_store_is_unchanged(tiny_artifacts, runtime_env, tmp_path, daemons):
    d = _start(tiny_artifacts, tmp_path, runtime_env, daemons, allow=True)
    with Client(str(d.socket), timeout=30) as client:
        r = _Reader(client)
        client.send(Enroll(label="../etc", seconds=1.0))
        client.send(Enroll(label="quiet", seconds=1.0))
        client.send(Enroll(label="again", seconds=1.0))
        d.proc.stdin.write(bytes(2 * RATE * 2))  # 2 s of digital silence
        d.proc.stdin.flush()
        deadline = time.monotonic() + 30
        while len([e for e in r.events if isinstance(e, Error)]) < 3:
            assert time.monotonic() < deadline, r.events
            time.sleep(0.05)
        errors = [e.message for e in r.events if isinstance(e, Error)]
        assert "is not accepted" in errors[0] and "in progress" in errors[1] and "silent" in errors[2]
        d.proc.stdin.close()
        r.thread.join(30)
    assert d.wait() == 0, d.log()
    assert not (tmp_path / "en").exists()


def test_enroll_over_the_socket_from_a_real_pulseaudio_capture(tiny_artifacts, tmp_path, daemons):
    import shutil

    from .test_sources_pulse import Pulse

    if shutil.which("pulseaudio") is None or shutil.which("paplay") is None:
        pytest.skip("pulseaudio / paplay are not installed (apt install pulseaudio pulseaudio-utils libasound2-plugins)")
    pulse = Pulse()
    pulse.start()
    try:
        config = tmp_path / "config.yaml"
        config.write_text("server:\n  allow_enroll: true\n")
        art = tiny_artifacts
        args = ["--config", str(config), "--source", "mic:pulse", "--k", "1", "--model", str(art.model), "--index", str(art.index), "--enrolled", str(tmp_path / "en")]
        d = daemons(tmp_path, pulse.env, args)
        d.wait_listening()
        with Client(str(d.socket), timeout=30) as client:
            r = _Reader(client)
            r.wait_for(Scene)  # the capture runs
            player = pulse.play(art.clips["street_traffic"])  # 6 s
            time.sleep(1.0)
            client.send(Enroll(label="kitchen", seconds=3.0))
            done = r.wait_for(Enrolled, 30)
            assert player.wait(10) == 0, player.stderr.read()
        assert done.label == "kitchen" and done.items == 10 and done.threshold > 0
        assert EnrolledSet.load(tmp_path / "en").counts() == {"kitchen": 10}
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait() == 0, d.log()
    finally:
        pulse.close()


# --- the job itself (LiveEnrolments without a daemon) -----------------------------------------------


def _jobs(tmp_path, published: list, no_data_timeout: float = 1.0):
    from types import SimpleNamespace

    from edge_asc.daemon.live_enrol import LiveEnrolments

    meta = SimpleNamespace(feature_config=SimpleNamespace(segment_seconds=0.3, context_samples=400))
    return LiveEnrolments(tmp_path / "en", meta, (), published.append, lambda: None, no_data_timeout)


def test_an_enrolment_that_hears_nothing_by_its_deadline_is_refused_and_the_next_request_is_accepted(tmp_path):
    published: list = []
    jobs = _jobs(tmp_path, published, no_data_timeout=1.0)
    assert isinstance(jobs.request_enrol("kitchen", 2.0), Enrolling)
    jobs.expire(time.monotonic() + 4.9)  # 2 x 2 s + 1 s: not yet
    assert published == [] and isinstance(jobs.request_enrol("hall", 2.0), Error)
    jobs.expire(time.monotonic() + 5.1)
    assert [e.code for e in published] == [ENROL_REFUSED] and "kitchen: enrolment timed out" in published[0].message
    assert isinstance(jobs.request_enrol("hall", 2.0), Enrolling)  # busy forever before


def test_a_lost_source_ends_the_enrolment_and_a_late_segment_does_not_write_it(tmp_path):
    published: list = []
    jobs = _jobs(tmp_path, published)
    jobs.request_enrol("kitchen", 0.6)
    jobs.on_block(np.ones(4800, dtype=np.float32), 0)
    jobs.cancel("the audio source was lost during the enrolment; nothing was remembered")
    for start in (0, 4800):
        jobs.on_segment(start, np.zeros(8, dtype=np.float32))
    jobs.join(5)
    assert [e.code for e in published] == [ENROL_REFUSED] and "source was lost" in published[0].message
    assert not (tmp_path / "en").exists() and isinstance(jobs.request_enrol("kitchen", 0.6), Enrolling)


def _taking(jobs) -> list:
    """The jobs handed to the writer thread, which is replaced: only the job's content matters here."""
    taken: list = []
    jobs._start = lambda target, job: taken.append(job)
    return taken


def test_segments_whose_audio_predates_the_request_are_not_enrolled_nor_in_the_silence_check(tmp_path):
    jobs = _jobs(tmp_path, [])  # segments of 4800 samples with 400 samples of left context
    taken = _taking(jobs)
    jobs.on_block(np.ones(4800, dtype=np.float32), 0)  # before the request
    jobs.request_enrol("kitchen", 0.6)
    jobs.on_segment(4800, np.full(8, 4800.0, dtype=np.float32))  # completed before the worker's first block after it
    jobs.on_block(np.full(3000, 0.5, dtype=np.float32), 10_000)  # the job's audio starts at sample 10000
    for start in (9600, 14400, 19200):  # 9600: its audio began at 9200, before the request
        jobs.on_segment(start, np.full(8, float(start), dtype=np.float32))
    job = taken[0]
    assert [float(e[0]) for e in job.embeddings] == [14400.0, 19200.0]
    assert job.samples == 3000 and job.sumsq == 3000 * 0.25


def test_a_left_context_of_zeros_at_the_start_of_a_run_is_not_audio_before_the_request(tmp_path):
    jobs = _jobs(tmp_path, [])
    taken = _taking(jobs)
    jobs.request_enrol("kitchen", 0.6)
    jobs.on_block(np.ones(9600, dtype=np.float32), 24_000, 24_000)  # the first block after a restart at 24000
    jobs.on_segment(24_000, np.full(8, 1.0, dtype=np.float32))
    jobs.on_segment(28_800, np.full(8, 2.0, dtype=np.float32))
    assert [float(e[0]) for e in taken[0].embeddings] == [1.0, 2.0]
