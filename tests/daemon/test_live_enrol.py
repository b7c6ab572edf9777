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
