"""The daemon end to end: real model + index (conftest.tiny_artifacts), real Unix sockets, real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge_asc.dsp.audio_io import read_audio
from edge_asc.protocol.client import Client
from edge_asc.runtime.decision import DecisionPolicy
from edge_asc.protocol.messages import Error, Hello, Scene, Status

from conftest import WRAPPER

SCENE_KEYS = ("label", "votes", "confidence", "k", "mode", "stream_start_s", "stream_end_s", "segment_index")


def _artifact_args(art) -> list[str]:
    return ["--model", str(art.model), "--index", str(art.index)]


def _cli(env, *args, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], env=env, capture_output=True, text=True, timeout=60, input=stdin)


def _scene_tuple(scene: dict) -> tuple:
    return tuple(json.dumps(scene[k], sort_keys=True) if k == "votes" else scene[k] for k in SCENE_KEYS)


def _read_until_closed(client: Client, timeout: float = 30.0) -> list:
    events, deadline = [], time.monotonic() + timeout
    for event in client:
        events.append(event)
        assert time.monotonic() < deadline, "the daemon did not close the connection"
    return events


# --- end to end over the Unix socket ----------------------------------------------------------------


@pytest.mark.parametrize("blocksize,k,mode", [(37, 3, "window"), (4096, 2, "sliding")])
def test_file_source_over_the_socket_gives_classify_decisions(tiny_artifacts, runtime_env, tmp_path, daemons, blocksize, k, mode):
    from edge_asc.runtime.encoder import Encoder

    art, clip = tiny_artifacts, tiny_artifacts.clips["rain"]
    offline = _cli(runtime_env, "classify", str(clip), "--json", "--k", str(k), "--mode", mode, *_artifact_args(art))
    assert offline.returncode == 0, offline.stderr
    expected = [_scene_tuple(json.loads(line)) for line in offline.stdout.splitlines()]
    assert len(expected) >= 3
    assert "HEAVY_MODULES=\n" in offline.stderr, offline.stderr  # classify does not load torch or librosa either

    config = tmp_path / "config.yaml"
    config.write_text(f"audio:\n  blocksize: {blocksize}\n  realtime: false\nserver:\n  wait_for_client: true\n")
    d = daemons(tmp_path, runtime_env, ["--config", str(config), "--source", f"file:{clip}", "--k", str(k), "--mode", mode, *_artifact_args(art)])
    d.wait_listening()
    assert (os.stat(d.socket).st_mode & 0o777) == 0o660
    with Client(str(d.socket), timeout=30) as client:
        hello = client.hello
        events = _read_until_closed(client)
    assert isinstance(hello, Hello)
    assert hello.labels == art.labels + ("silence",) and (hello.k, hello.mode) == (k, mode)
    assert hello.model_sha256 == Encoder(art.model).meta.sha256 and hello.segment_seconds == pytest.approx(0.3)
    scenes = [e for e in events if isinstance(e, Scene)]
    assert [_scene_tuple(s.to_dict()) for s in scenes] == expected
    assert all(s.latency_ms >= 0 for s in scenes)
    assert d.wait() == 0, d.log()
    assert not d.socket.exists()  # removed on the way out
    log = d.log()
    assert "HEAVY_MODULES=\n" in log, f"the daemon imported training modules: {log}"


def test_ready_watchdog_sigterm_and_stopping(tiny_artifacts, runtime_env, tmp_path, daemons):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = tmp_path / "notify.sock"
    notify.bind(str(notify_path))
    notify.settimeout(30)
    env = dict(runtime_env, NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="400000")
    d = daemons(tmp_path, env, ["--source", f"file:{tiny_artifacts.clips['street_traffic']}", "--realtime", *_artifact_args(tiny_artifacts)])
    assert notify.recv(200).decode().startswith("READY=1")
    assert d.socket.exists()  # READY comes once it serves
    assert notify.recv(200) == b"WATCHDOG=1"
    assert notify.recv(200) == b"WATCHDOG=1"  # every 0.2 s from the worker
    with Client(str(d.socket), timeout=10) as client:
        first = next(e for e in client if isinstance(e, Scene))
        assert first.label == "street_traffic" and first.segment_index == 2
        d.proc.send_signal(signal.SIGTERM)
        rest = _read_until_closed(client)
    assert d.wait() == 0, d.log()
    messages = []
    notify.settimeout(2)
    try:
        while True:
            messages.append(notify.recv(200))
    except TimeoutError:
        pass
    assert b"STOPPING=1" in messages
    assert not d.socket.exists()
    assert "SIGTERM: stopping" in d.log()
    assert all(not isinstance(e, Error) for e in rest)
    notify.close()


def test_bad_config_and_mismatched_model_and_index_are_refused(tiny_artifacts, runtime_env, tmp_path):
    art = tiny_artifacts
    bad = tmp_path / "bad.yaml"
    bad.write_text("decision:\n  k: 3\n  modus: window\n")
    r = _cli(runtime_env, "run", "--config", str(bad), "--check-config", *_artifact_args(art))
    assert r.returncode == 2
    assert "unknown key decision.modus; accepted keys: decision.k, decision.mode" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text(_cli(runtime_env, "run", "--dump-config").stdout)
    r = _cli(runtime_env, "run", "--config", str(good), "--check-config", *_artifact_args(art))
    assert r.returncode == 0 and "config OK" in r.stdout, r.stderr
    r = _cli(runtime_env, "run", "--source", "file:x.wav", "--model", str(art.other_model), "--index", str(art.index))
    assert r.returncode == 2
    assert f"index {art.index} does not fit encoder {art.other_model}" in r.stderr
    r = _cli(runtime_env, "classify", str(art.clips["rain"]), "--model", str(art.other_model), "--index", str(art.index))
    assert r.returncode == 2 and "does not fit encoder" in r.stderr
    r = _cli(runtime_env, "run", "--source", f"file:{tmp_path / 'missing.flac'}", *_artifact_args(art))
    assert r.returncode == 2 and "missing.flac" in r.stderr


def test_malformed_requests_get_errors_and_set_changes_k_for_everyone(tiny_artifacts, runtime_env, tmp_path, daemons):
    clip = tiny_artifacts.clips["forest_birds"]
    d = daemons(tmp_path, runtime_env, ["--source", f"file:{clip}", "--realtime", "--wait-for-client", "--k", "3", *_artifact_args(tiny_artifacts)])
    d.wait_listening()
    bystander = Client(str(d.socket), timeout=15)
    bystander.connect()
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(d.socket))
    raw.settimeout(15)
    reader = raw.makefile("rb")
    assert json.loads(reader.readline())["type"] == "hello"
    bad_lines = [b"not json", b'{"type": "set", "k": 0}', b'{"type": "set", "k": 1000}', b'{"type": "bogus"}', b'{"type": "set", "K": 2}', b"\xff\xfe"]
    raw.sendall(b"\n".join(bad_lines) + b"\n")
    errors = []
    while len(errors) < len(bad_lines):
        event = json.loads(reader.readline())
        if event["type"] == "error":
            errors.append(event)
    assert [e["code"] for e in errors] == ["bad_request"] * len(bad_lines)
    assert "set.k: must be an integer from 1 to 100, got 1000" in errors[2]["message"]
    while (event := json.loads(reader.readline()))["type"] != "scene":
        pass
    assert event["k"] == 3
    raw.sendall(b'{"type": "set", "k": 1, "mode": "sliding"}\n' * 10)  # one change, asked ten times
    while (event := json.loads(reader.readline()))["type"] != "status":
        pass
    assert (event["k"], event["mode"]) == (1, "sliding")
    later = [json.loads(reader.readline()) for _ in range(3)]
    assert all(e["type"] != "scene" or e["k"] == 1 for e in later)
    raw.close()
    # the other client was not disturbed and now gets k=1 decisions too
    ks = []
    for event in bystander:
        if isinstance(event, Scene):
            ks.append(event.k)
        if len(ks) >= 6:
            break
    assert ks[0] == 3 and ks[-1] == 1
    bystander.close()
    d.proc.send_signal(signal.SIGINT)
    assert d.wait() == 0, d.log()
    assert d.log().count("decision policy set to k=1, mode=sliding") == 1  # logged once per change, not per request


def test_hello_and_status_report_k_max_and_set_changes_it_over_the_socket(tiny_artifacts, runtime_env, tmp_path, daemons):
    clip = tiny_artifacts.clips["forest_birds"]
    d = daemons(tmp_path, runtime_env, ["--source", f"file:{clip}", "--realtime", "--wait-for-client", "--k", "3", "--k-max", "7", *_artifact_args(tiny_artifacts)])
    d.wait_listening()
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(d.socket))
    raw.settimeout(15)
    reader = raw.makefile("rb")
    hello = json.loads(reader.readline())
    assert (hello["type"], hello["k_max"], hello["mode"]) == ("hello", 7, "window")
    raw.sendall(b'{"type": "set", "mode": "adaptive", "k_max": 101}\n')  # refused whole: the mode does not change either
    while (event := json.loads(reader.readline()))["type"] != "error":
        pass
    assert event["code"] == "bad_request" and "set.k_max: must be an integer from 1 to 100, got 101" in event["message"]
    raw.sendall(b'{"type": "set", "mode": "adaptive", "k_max": 2}\n')
    while (event := json.loads(reader.readline()))["type"] != "status":
        pass
    assert (event["mode"], event["k_max"], event["k"]) == ("adaptive", 2, 3)
    scenes = []
    while len(scenes) < 4:
        event = json.loads(reader.readline())
        if event["type"] == "scene" and event["mode"] == "adaptive":
            scenes.append(event)
    assert all(1 <= e["k"] <= 2 for e in scenes)  # no adaptive decision waits past the new k_max
    raw.close()
    d.proc.send_signal(signal.SIGINT)
    assert d.wait() == 0, d.log()


def test_a_client_that_never_reads_loses_its_oldest_events_and_delays_nobody(tiny_artifacts, runtime_env, tmp_path, daemons):
    audio = read_audio(tiny_artifacts.clips["rain"], 16000)
    pcm = (np.clip(np.tile(audio, 80), -1, 1) * 32767).astype("<i2").tobytes()  # 480 s, 1600 segments
    n_segments = len(pcm) // 2 // 4800
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  queue_size: 128\n  wait_for_client: true\nstatus_interval: 0.5\n")
    d = daemons(tmp_path, runtime_env, ["--config", str(config), "--source", "stdin", "--k", "1", *_artifact_args(tiny_artifacts)], stdin=subprocess.PIPE)
    d.wait_listening()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(d.socket))
    stuck.sendall(b'{"type": "subscribe", "events": ["scene", "segment", "status"]}\n')  # then never reads
    feeder = threading.Thread(target=lambda: d.proc.stdin.write(pcm) and d.proc.stdin.flush())
    with Client(str(d.socket), timeout=30) as client:
        client.subscribe(["scene", "status"])
        feeder.start()
        indices, drops = [], 0
        for event in client:
            if isinstance(event, Scene):
                indices.append(event.segment_index)
            if isinstance(event, Error):
                raise AssertionError(f"the reading client got an error: {event}")
            if isinstance(event, Status):
                drops = event.drops
            if len(indices) == n_segments and drops > 0:
                break
        assert indices == list(range(n_segments))  # every decision, in order, none dropped
        feeder.join()
        # now the stuck client reads: the gap is reported where it is
        stuck.settimeout(10)
        reader = stuck.makefile("rb")
        dropped = None
        while dropped is None:
            event = json.loads(reader.readline())
            if event["type"] == "error" and event["code"] == "dropped":
                dropped = event
        assert dropped["count"] > 0
        d.proc.stdin.close()  # end of input: the daemon finishes
        _read_until_closed(client)
    stuck.close()
    assert d.wait() == 0, d.log()


# --- a source that fails and comes back (in-process daemon, real server and client) ----------------


def test_a_lost_source_is_reported_retried_and_back(tiny_artifacts, tmp_path):
    from edge_asc.daemon.daemon import Daemon
    from edge_asc.config import apply_overrides
    from edge_asc.daemon.config import DaemonConfig
    from edge_asc.runtime.pipeline import load_artifacts
    from edge_asc.daemon.sources import SourceError, StdinSource

    class FlakyPipe(StdinSource):
        """PCM from a pipe that behaves like a microphone: not there at first, unplugged later."""

        finite = False

        def __init__(self, read_fd):
            super().__init__(16000, 1, 800, stream=os.fdopen(read_fd, "rb", buffering=0))
            self.failures_left = 2  # open() fails this many times
            self.unplugged = False

        def open(self):
            if self.failures_left:
                self.failures_left -= 1
                raise SourceError("device not present")
            self.unplugged = False
            if self._thread is None:
                self._opened = False
                super().open()
            else:
                self.opened_at = time.monotonic()
                self.ring.reset()

        def problem(self):
            return "device unplugged" if self.unplugged else super().problem()

        def close(self):
            pass  # the pipe stays: the "device" comes back on it

    cfg = apply_overrides(
        DaemonConfig(),
        {"server.socket": str(tmp_path / "d.sock"), "server.wait_for_client": True, "audio.retry_min": 0.05, "audio.retry_max": 0.2, "audio.no_data_timeout": 30.0, "decision.k": 1},
    )
    encoder, index = load_artifacts(tiny_artifacts.model, tiny_artifacts.index)
    r, w = os.pipe()
    writer = os.fdopen(w, "wb", buffering=0)
    source = FlakyPipe(r)
    daemon = Daemon(cfg, encoder, index, source)
    codes = []
    result = []
    runner = threading.Thread(target=lambda: result.append(daemon.run()))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "d.sock").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pcm = (read_audio(tiny_artifacts.clips["rain"], 16000)[:48000] * 32767).astype("<i2").tobytes()
        with Client(str(tmp_path / "d.sock"), timeout=10) as client:
            scenes, indices = 0, []
            for event in client:
                if isinstance(event, Error):
                    codes.append(event.code)
                    if codes == ["source_lost", "source_back"]:
                        writer.write(pcm)  # audio flows once the source is open
                    if codes == ["source_lost", "source_back", "source_lost", "source_back"]:
                        writer.write(pcm)
                if isinstance(event, Scene):
                    scenes += 1
                    indices.append(event.segment_index)
                    if scenes == 10 and len(codes) == 2:
                        source.unplugged = True
                        source.failures_left = 1
                    if scenes == 20:
                        break
        assert codes == ["source_lost", "source_back", "source_lost", "source_back"]
        assert indices == list(range(20))  # numbering goes on across the gap
    finally:
        daemon.stop()
        runner.join(15)
        writer.close()  # end of the pipe: the reader thread ends
    assert result == [0]
    assert not (tmp_path / "d.sock").exists()


# --- bad samples, log level, overflow warnings ------------------------------------------------------


def test_a_float_wav_with_nan_neither_crashes_classify_nor_the_pipeline(tiny_artifacts, runtime_env, tmp_path):
    import soundfile as sf

    from edge_asc.runtime.pipeline import Conditioner, Pipeline, load_artifacts

    audio = read_audio(tiny_artifacts.clips["rain"], 16000)[:16000 * 3]
    audio[1000], audio[20000], audio[30000] = np.nan, np.inf, -np.inf
    path = tmp_path / "nan.wav"
    sf.write(str(path), audio, 16000, subtype="FLOAT")
    r = _cli(runtime_env, "classify", str(path), *_artifact_args(tiny_artifacts))
    assert r.returncode == 2 and "nan.wav: contains NaN or infinite samples" in r.stderr, r.stderr  # a clear refusal
    assert "Traceback" not in r.stderr
    # the same samples as a live source delivers them (no audio_io check): the worker's path goes on
    raw, rate = sf.read(str(path), dtype="float32", always_2d=True)
    encoder, index = load_artifacts(tiny_artifacts.model, tiny_artifacts.index)
    pipeline = Pipeline(encoder, index, DecisionPolicy(len(encoder.meta.labels), 3, "window"))
    cond = Conditioner(rate, 16000, "mic:test")
    results = [r for i in range(0, len(raw), 512) for r in pipeline.push(cond.process(raw[i : i + 512]))]
    assert cond.nonfinite == 3
    assert len(results) == 10 and sum(d is not None for _, d in results) == 3
    assert all(np.isfinite(seg.distance) for seg, _ in results)


def test_an_explicit_log_level_wins_over_the_config_file(tiny_artifacts, tmp_path, monkeypatch):
    from edge_asc import cli

    levels = []
    monkeypatch.setattr(cli, "configure_logging", levels.append)
    config = tmp_path / "c.yaml"
    config.write_text("log_level: WARNING\n")
    args = ["run", "--config", str(config), "--check-config", "--socket", str(tmp_path / "s.sock"), *_artifact_args(tiny_artifacts)]
    assert cli.main(["--log-level", "INFO", *args]) == 0
    assert levels == ["INFO"]  # the flag, even when it names the default
    levels.clear()
    assert cli.main(args) == 0
    assert levels == ["WARNING"]  # no flag: the file's level


def test_growing_overflows_are_logged_at_most_once_per_interval(tiny_artifacts, tmp_path, monkeypatch, caplog):
    from edge_asc.daemon import daemon as daemonmod
    from edge_asc.config import apply_overrides
    from edge_asc.daemon.config import DaemonConfig
    from edge_asc.runtime.pipeline import load_artifacts
    from edge_asc.daemon.sources import FileSource

    cfg = apply_overrides(DaemonConfig(), {"server.socket": str(tmp_path / "d.sock")})
    encoder, index = load_artifacts(tiny_artifacts.model, tiny_artifacts.index)
    source = FileSource(tiny_artifacts.clips["rain"])
    d = daemonmod.Daemon(cfg, encoder, index, source)
    with caplog.at_level("WARNING", logger="edge_asc.daemon.daemon"):
        d._warn_overflows()  # none yet: nothing to say
        source.input_overflows = 3
        d._warn_overflows()
        source.input_overflows = 5
        d._warn_overflows()  # within the interval: held back
        monkeypatch.setattr(daemonmod, "OVERFLOW_WARN_INTERVAL_S", 0.0)
        d._warn_overflows()
        d._warn_overflows()  # no growth: nothing
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "3 audio overflows since the last report (3 in all)",
        "2 audio overflows since the last report (5 in all)",
    ]
    assert d.status().overflows == 5


def test_the_daemon_with_enrolled_only_decides_places_and_unknown_as_classify_does_with_evidence(tiny_artifacts, runtime_env, tmp_path, daemons):
    art = tiny_artifacts
    stores = [*_artifact_args(art), "--enrolled", str(tmp_path / "en")]
    enrolled = _cli(runtime_env, "enroll", "--label", "kitchen", str(art.clips["rain"]), *stores)
    assert enrolled.returncode == 0, enrolled.stderr
    clip = art.clips["street_traffic"]
    offline = _cli(runtime_env, "classify", str(clip), "--json", "--enrolled-only", *stores)
    expected = [json.loads(line) for line in offline.stdout.splitlines()]
    assert expected and {e["label"] for e in expected} == {"unknown"}, offline.stdout + offline.stderr
    config = tmp_path / "config.yaml"
    config.write_text("audio:\n  realtime: false\nserver:\n  wait_for_client: true\n")
    d = daemons(tmp_path, runtime_env, ["--config", str(config), "--source", f"file:{clip}", "--enrolled-only", *stores])
    d.wait_listening()
    with Client(str(d.socket), timeout=30) as client:
        hello = client.hello
        scenes = [e for e in _read_until_closed(client) if isinstance(e, Scene)]
    assert hello.labels == art.labels + ("kitchen", "unknown", "silence") and hello.enrolled == ("kitchen",) and hello.enrolled_only
    assert [_scene_tuple(s.to_dict()) for s in scenes] == [_scene_tuple(e) for e in expected]
    assert [s.unknown.to_dict() for s in scenes] == [e["unknown"] for e in expected]
    assert all(s.unknown.nearest == "kitchen" and s.unknown.distance > s.unknown.threshold for s in scenes)
    assert d.wait() == 0, d.log()


SIGTERM_EXIT_BOUND_S = 5.0  # docs/deployment.md: SIGTERM -> exit 0 within this (the ring holds at most ring_seconds of audio)


def test_sigterm_with_a_fast_file_source_exits_0_within_the_bound(tiny_artifacts, runtime_env, tmp_path, daemons):
    import soundfile as sf

    clip, rate = sf.read(str(tiny_artifacts.clips["rain"]), dtype="float32")
    long_file = tmp_path / "long.flac"
    sf.write(str(long_file), np.tile(clip, 100), rate, subtype="PCM_16")  # 10 minutes: still being read at SIGTERM
    d = daemons(tmp_path, runtime_env, ["--source", f"file:{long_file}", "--no-realtime", *_artifact_args(tiny_artifacts)])
    d.wait_listening()
    time.sleep(1.0)  # the reader fills the ring as fast as the worker drains it
    assert d.proc.poll() is None, d.log()
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.wait(30)
    took = time.monotonic() - t0
    assert rc == 0 and took < SIGTERM_EXIT_BOUND_S, f"exit {rc} after {took:.1f} s:\n{d.log()}"


def test_a_worker_still_busy_after_the_stop_timeout_ends_in_exit_1_not_an_abort(tiny_artifacts, runtime_env, tmp_path):
    # STOP_TIMEOUT_S 0 stands for a device too slow to drain its ring in time (seen under emulation:
    # the interpreter's exit with the worker inside onnxruntime aborted the process: SIGABRT, a core dump)
    import soundfile as sf

    clip, rate = sf.read(str(tiny_artifacts.clips["rain"]), dtype="float32")
    long_file = tmp_path / "long.flac"
    sf.write(str(long_file), np.tile(clip, 100), rate, subtype="PCM_16")
    wrapper = "import edge_asc.daemon.daemon as d; d.STOP_TIMEOUT_S = 0.0\n" + WRAPPER
    sock = tmp_path / "edge-asc.sock"
    argv = [sys.executable, "-c", wrapper, "run", "--socket", str(sock), "--source", f"file:{long_file}", "--no-realtime", *_artifact_args(tiny_artifacts)]
    proc = subprocess.Popen(argv, env=runtime_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # the worker is busy with the file (10 minutes of it)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "the worker did not finish within 0 s" in out and "the worker is still busy; exiting without waiting for it" in out
    assert "terminate called" not in out and not sock.exists()
