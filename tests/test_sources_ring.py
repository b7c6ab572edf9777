"""Ring buffer, decision policy, sources, conditioning, daemon config and sd_notify (no model needed)."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_asc import config as cfgmod
from edge_asc.dsp.audio_io import read_audio
from edge_asc.config import ConfigError
from edge_asc.daemon.config import DaemonConfig, SourceSpec, apply_overrides, dump_yaml, load_config, reference_rows
from edge_asc.runtime.decision import Decision, DecisionPolicy, Vote, vote
from edge_asc.runtime.pipeline import Conditioner
from edge_asc.daemon.ring import RingBuffer
from edge_asc.daemon.sdnotify import Notifier
from edge_asc.daemon.sources import FileSource, InputDevice, SourceError, StdinSource, find_input_device

REPO = Path(__file__).resolve().parents[1]
DCASE = Path("/work/shared/fixtures/dcase_acoustic_scene_44k_stereo.wav")
if not DCASE.exists():
    DCASE = REPO.parent / "shared" / "fixtures" / "dcase_acoustic_scene_44k_stereo.wav"


# --- ring buffer ------------------------------------------------------------------------------------


def test_ring_returns_blocks_in_order_with_times_across_the_wrap():
    ring = RingBuffer(capacity=10, channels=2)
    rng = np.random.default_rng(0)
    sent = []
    for i in range(7):  # 7 blocks of 3 frames through a 10-frame ring: wraps several times
        block = rng.standard_normal((3, 2)).astype(np.float32)
        assert ring.write(block, now=100.0 + i)
        got, t = ring.read()
        assert t == 100.0 + i
        np.testing.assert_array_equal(got, block)
        sent.append(block)
    assert ring.read() is None
    s = ring.stats()
    assert (s.written_frames, s.read_frames, s.overflows, s.fill_frames) == (21, 21, 0, 0)


def test_ring_drops_and_counts_a_write_that_would_overwrite_unread_audio():
    ring = RingBuffer(capacity=8, channels=1)
    assert ring.write(np.arange(5, dtype=np.float32))
    assert not ring.write(np.arange(4, dtype=np.float32))  # only 3 frames free
    assert ring.overflows == 1 and ring.dropped_frames == 4
    assert ring.write(np.full(3, 7.0, dtype=np.float32))  # fits exactly
    first, _ = ring.read()
    np.testing.assert_array_equal(first[:, 0], np.arange(5))  # the unread audio was not overwritten
    second, _ = ring.read()
    np.testing.assert_array_equal(second[:, 0], [7.0, 7.0, 7.0])
    assert ring.stats().dropped_frames == 4


def test_ring_write_wait_waits_for_the_reader_and_wakes_it():
    ring = RingBuffer(capacity=4, channels=1)
    assert ring.write(np.ones(4, dtype=np.float32))
    done = threading.Event()

    def writer():
        ring.write_wait(np.full(4, 2.0, dtype=np.float32))  # must wait: the ring is full
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    assert not done.wait(0.2)
    assert ring.wait(0.1)
    np.testing.assert_array_equal(ring.read()[0][:, 0], np.ones(4))
    assert done.wait(2.0)
    assert ring.wait(1.0)
    np.testing.assert_array_equal(ring.read()[0][:, 0], np.full(4, 2.0))
    t.join()
    ring.close()
    assert not ring.write_wait(np.ones(1, dtype=np.float32))  # closed: returns at once
    assert ring.overflows == 0


def test_ring_records_suffice_for_a_full_ring_of_small_blocks():
    ring = RingBuffer(capacity=200_000, channels=1)  # more 32-frame blocks than the old 4096 records
    block = np.ones(32, dtype=np.float32)
    assert all(ring.write(block) for _ in range(200_000 // 32))
    assert ring.overflows == 0 and ring.stats().fill_frames == 200_000 // 32 * 32
    assert not ring.write(block) and ring.overflows == 1  # the frames are what runs out
    assert ring.wait(0.0) and ring._wake.is_set()  # a write left the consumer woken


def test_overflow_count_keeps_its_total_across_reopens():
    from edge_asc.daemon.sources import Source

    class Reopened(Source):  # the bookkeeping of every source: a microphone reopens like this
        def open(self):
            self._make_ring()

        def close(self):
            pass

    source = Reopened(ring_seconds=1.0)
    source.rate = 16000
    source.open()
    block = np.ones(source.ring.capacity, dtype=np.float32)
    assert source.ring.write(block) and not source.ring.write(block)  # the ring is full: one drop
    source.input_overflows += 2  # PortAudio's flags, counted by the callback
    assert source.overflows == 3
    source.open()  # same size: the ring is reset
    assert source.overflows == 3 and source.ring.overflows == 0 and source.input_overflows == 0
    source.ring.write(np.ones(source.ring.capacity + 1, dtype=np.float32))  # too long: dropped
    source.rate = 48000
    source.open()  # another rate: a new ring
    assert source.overflows == 4
    source.input_overflows += 1
    assert source.overflows == 5


def test_portaudio_rescan_initialises_again_after_a_failed_initialisation():
    """The real PortAudio: a failed initialisation leaves sounddevice's counter at 0 (as a terminate does);
    terminating again would raise paNotInitialized forever, so the rescan must only initialise."""
    import sounddevice as sd

    from edge_asc.daemon.sources import _reinitialize_portaudio

    _reinitialize_portaudio(sd)  # initialised: terminate + initialise
    assert sd._initialized == 1
    sd._terminate()  # the state a failed Pa_Initialize leaves behind
    assert sd._initialized == 0
    try:
        _reinitialize_portaudio(sd)  # must not terminate an uninitialised PortAudio
        assert sd._initialized == 1
        sd.query_devices()  # PortAudio answers again
    finally:
        if sd._initialized == 0:
            sd._initialize()


def test_conditioner_replaces_nan_and_inf_samples_counts_and_warns_once(caplog):
    cond = Conditioner(16000, 16000, "mic:test")
    block = np.ones((100, 2), dtype=np.float32)
    block[3, 0], block[7, 1], block[9] = np.nan, np.inf, -np.inf
    with caplog.at_level("WARNING", logger="edge_asc.runtime.pipeline"):
        out = cond.process(block)
        again = cond.process(block)
    assert np.isfinite(out).all() and np.isfinite(again).all()
    assert out[3] == 0.5 and out[9] == 0.0 and out[0] == 1.0
    assert cond.nonfinite == 8
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["mic:test: 4 NaN or infinite samples replaced with 0 (4 so far)"]  # rate-limited


# --- decision policy --------------------------------------------------------------------------------


def _votes(labels, dists=None):
    dists = dists or [0.1] * len(labels)
    return [Vote(i, lab, d, i * 4800, (i + 1) * 4800, float(i)) for i, (lab, d) in enumerate(zip(labels, dists))]


def _run(policy, votes):
    return [d for v in votes if (d := policy.push(v)) is not None]


def test_window_mode_decides_every_k_segments_over_those_k():
    out = _run(DecisionPolicy(3, k=3, mode="window"), _votes([0, 0, 1, 2, 2, 2, 1]))
    assert [(d.label, d.first_segment, d.last_segment, d.votes) for d in out] == [(0, 0, 2, (2, 1, 0)), (2, 3, 5, (0, 0, 3))]
    assert out[0].confidence == pytest.approx(2 / 3) and out[1].confidence == 1.0
    assert (out[0].start, out[0].end, out[0].ready) == (0, 3 * 4800, 2.0)


def test_sliding_mode_decides_after_every_segment_over_the_last_k():
    out = _run(DecisionPolicy(3, k=2, mode="sliding"), _votes([0, 1, 1, 2]))
    assert [(d.first_segment, d.last_segment) for d in out] == [(0, 1), (1, 2), (2, 3)]
    assert out[1].label == 1 and out[1].confidence == 1.0


def test_tie_break_smallest_summed_distance_then_earlier_label():
    labels = np.array([2, 1, 2, 1])
    assert vote(labels, np.array([0.1, 0.5, 0.1, 0.5]), 3)[0] == 2  # 0.2 < 1.0
    assert vote(labels, np.array([0.3, 0.3, 0.3, 0.3]), 3)[0] == 1  # equal sums: the earlier label
    assert vote(labels, np.array([0.1, 0.5, 0.1, 0.5]), 3, "label_order")[0] == 1
    out = _run(DecisionPolicy(3, k=2, mode="window"), _votes([2, 0], [0.2, 0.9]))
    assert out[0].label == 2 and out[0].confidence == 0.5


def test_k_and_mode_change_at_run_time():
    policy = DecisionPolicy(2, k=3, mode="window")
    assert _run(policy, _votes([0, 0])) == []
    policy.set_k(1)
    assert policy.k == 1
    d = policy.push(Vote(2, 1, 0.1, 0, 1, 0.0))
    assert isinstance(d, Decision) and d.k == 1 and d.label == 1
    policy.set_mode("sliding")
    policy.set_k(2)
    d = policy.push(Vote(3, 1, 0.1, 0, 1, 0.0))
    assert (d.mode, d.k, d.first_segment, d.last_segment) == ("sliding", 2, 2, 3)
    with pytest.raises(ValueError, match="k must be"):
        policy.set_k(0)
    with pytest.raises(ValueError, match="accepted values: window, sliding"):
        policy.set_mode("vote")


def test_set_changes_k_and_mode_in_one_step():
    policy = DecisionPolicy(2, k=3, mode="window")
    policy.set(k=2, mode="sliding")
    assert policy._pending == (2, "sliding")  # one pending update: the worker sees both or neither
    assert (policy.k, policy.mode) == (2, "sliding")
    policy.set(mode="window")
    assert policy._pending == (2, "window")  # None keeps the other value
    with pytest.raises(ValueError, match="accepted values: window, sliding"):
        policy.set(k=5, mode="vote")
    assert (policy.k, policy.mode) == (2, "window")  # a bad value changes nothing, not even the good one
    d = policy.push(Vote(0, 1, 0.1, 0, 1, 0.0))
    assert d is None and policy._pending is None
    d = policy.push(Vote(1, 1, 0.1, 0, 1, 0.0))
    assert (d.k, d.mode) == (2, "window")


# --- sources and conditioning -----------------------------------------------------------------------


def _drain(source, timeout=10.0):
    blocks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = source.finished
        source.ring.wait(0.05)
        while (item := source.ring.read()) is not None:
            blocks.append(item[0].copy())
        assert source.problem() is None
        if finished:
            return np.concatenate(blocks)
    raise AssertionError("the source did not finish")


def test_file_source_delivers_the_file_at_the_model_rate_and_paces_in_real_time(tmp_path):
    import soundfile as sf

    clip = read_audio(DCASE, 16000)[:16000]  # 1 s
    path = tmp_path / "clip.wav"
    sf.write(str(path), clip, 16000, subtype="FLOAT")
    fast = FileSource(path, 16000, realtime=False, blocksize=333)
    fast.open()
    np.testing.assert_array_equal(_drain(fast)[:, 0], clip)
    paced = FileSource(path, 16000, realtime=True, blocksize=1600)
    t0 = time.monotonic()
    paced.open()
    np.testing.assert_array_equal(_drain(paced)[:, 0], clip)
    assert time.monotonic() - t0 >= 0.95  # 1 s of audio takes 1 s
    with pytest.raises(SourceError, match="missing.flac"):
        FileSource(tmp_path / "missing.flac", 16000)


def test_stdin_source_reads_s16le_frames_split_anywhere():
    pcm = (np.arange(-3000, 3000, dtype=np.int16).reshape(-1, 2) * 7).astype("<i2")
    raw = pcm.tobytes()

    class Trickle(io.RawIOBase):  # a pipe that hands out 3 bytes at a time (frames are 4 bytes)
        def __init__(self):
            self.pos = 0

        def readable(self):
            return True

        def readinto(self, b):
            n = min(3, len(b), len(raw) - self.pos)
            b[:n] = raw[self.pos : self.pos + n]
            self.pos += n
            return n

    source = StdinSource(16000, channels=2, blocksize=100, stream=io.BufferedReader(Trickle(), buffer_size=3))
    source.open()
    got = _drain(source)
    np.testing.assert_array_equal(got, pcm.astype(np.float32) / 32768.0)
    with pytest.raises(SourceError, match="cannot be reopened"):
        source.open()


@pytest.mark.parametrize("block", [441, 1000, 4410])
def test_conditioner_matches_reading_the_file(block):
    """A 44.1 kHz stereo device stream, mixed and resampled in blocks = the file read offline."""
    import soundfile as sf

    data, rate = sf.read(str(DCASE), dtype="float32", always_2d=True)  # (frames, 2)
    data = data[: 3 * rate]
    cond = Conditioner(rate, 16000)
    live = np.concatenate([cond.process(data[i : i + block]) for i in range(0, data.shape[0], block)] + [cond.flush()])
    from edge_asc.dsp.audio_io import to_mono
    from edge_asc.dsp.resample import resample

    np.testing.assert_array_equal(live, resample(to_mono(data), rate, 16000))


def test_input_device_lookup_by_index_and_name():
    devices = [
        InputDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, 44100.0, "ALSA", False),
        InputDevice(3, "USB Audio Device: Mic (hw:1,0)", 1, 48000.0, "ALSA", False),
        InputDevice(5, "pulse", 32, 44100.0, "ALSA", False),
        InputDevice(6, "default", 32, 44100.0, "ALSA", True),
    ]
    assert find_input_device(devices, None).index == 6
    assert find_input_device(devices, "3").name.startswith("USB")
    assert find_input_device(devices, "usb").index == 3
    assert find_input_device(devices, "pulse").index == 5
    with pytest.raises(SourceError, match="no input device with index 4"):
        find_input_device(devices, "4")
    with pytest.raises(SourceError, match=r"2 input devices match 'a'.*give its index"):
        find_input_device(devices[:2], "a")
    with pytest.raises(SourceError, match="no input device matches 'bluetooth'; input devices: 0: HDA"):
        find_input_device(devices, "bluetooth")
    with pytest.raises(SourceError, match="no audio input device"):
        find_input_device([], None)


# --- configuration ----------------------------------------------------------------------------------


def test_dumped_config_is_complete_commented_and_loads_back(tmp_path):
    text = dump_yaml()
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == DaemonConfig()
    keys = {key for key, *_ in reference_rows()}
    for key in keys:  # every key is in the dump, with a comment
        leaf = key.split(".")[-1]
        assert any(line.strip().startswith(f"{leaf}:") and "#" in line for line in text.splitlines()), key
    docs = (REPO / "docs" / "config.md").read_text()
    missing = [k for k in keys if f"`{k}`" not in docs]
    assert not missing, f"docs/config.md does not document {missing}"


def test_config_errors_name_the_key_and_the_accepted_values(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("decision:\n  k: 3\n  windw: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key decision.windw; accepted keys: decision.k, decision.mode"):
        load_config(bad)
    bad.write_text("decision:\n  mode: majority\n")
    with pytest.raises(ConfigError, match="decision.mode: 'majority' is not accepted; accepted values: window, sliding"):
        load_config(bad)
    bad.write_text("source: microphone\n")
    with pytest.raises(ConfigError, match="accepted forms: mic, mic:NAME_OR_INDEX, file:PATH, stdin"):
        load_config(bad)
    bad.write_text("server:\n  tcp: 8765\n")
    with pytest.raises(ConfigError, match="server.tcp: expected str or NoneType, got 8765"):
        load_config(bad)
    with pytest.raises(ConfigError, match="audio: channels must be from 1 to 64"):
        apply_overrides(DaemonConfig(), {"audio.channels": 0})


def test_non_finite_or_huge_waits_and_search_breadth_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    for key, value in (("no_data_timeout", ".nan"), ("retry_min", ".inf"), ("retry_max", ".nan"), ("retry_min", "-1.0"), ("no_data_timeout", "1e9")):
        bad.write_text(f"audio:\n  {key}: {value}\n")
        with pytest.raises(ConfigError, match=f"audio: {key} must be a positive number of seconds"):
            load_config(bad)
    with pytest.raises(ConfigError, match="retry_max must be at least retry_min"):
        apply_overrides(DaemonConfig(), {"audio.retry_min": 5.0, "audio.retry_max": 1.0})
    with pytest.raises(ConfigError, match="inference: ef must be from 1 to 10000"):
        apply_overrides(DaemonConfig(), {"inference.ef": 10**9})
    assert apply_overrides(DaemonConfig(), {"inference.ef": 10000}).inference.ef == 10000


def test_a_key_yaml_reads_as_a_boolean_or_number_is_named_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("yes: 1\n3: 2\naudio:\n  on: true\n")  # YAML 1.1: yes and on are booleans
    with pytest.raises(ConfigError, match=r"unknown key 3 \(and True\); accepted keys: model"):
        load_config(bad)
    bad.write_text("audio:\n  on: true\n")
    with pytest.raises(ConfigError, match=r"unknown key audio.True; accepted keys: audio.samplerate"):
        load_config(bad)


def test_cli_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"source": "mic:usb", "decision": {"k": 5, "mode": "sliding"}}))
    cfg = load_config(path, {"decision.k": 2, "decision.mode": None, "source": "stdin"})
    assert (cfg.decision.k, cfg.decision.mode, cfg.source_spec) == (2, "sliding", SourceSpec("stdin"))
    assert SourceSpec.parse("mic:USB Mic") == SourceSpec("mic", "USB Mic")
    assert SourceSpec.parse("file:/a:b.wav") == SourceSpec("file", "/a:b.wav")
    assert cfgmod.to_dict(cfg)["decision"] == {"k": 2, "mode": "sliding", "neighbours": 1, "tie_break": "distance"}


# --- sd_notify --------------------------------------------------------------------------------------


def test_notifier_sends_ready_watchdog_stopping_to_a_datagram_socket(tmp_path, monkeypatch):
    addr = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(addr))
    sock.settimeout(2.0)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier(str(addr))
    assert n.watchdog_interval == 1.0
    assert n.ready("serving")
    assert n.watchdog(now=10.0) and not n.watchdog(now=10.5) and n.watchdog(now=11.1)
    assert n.stopping()
    got = [sock.recv(100).decode() for _ in range(4)]
    assert got == ["READY=1\nSTATUS=serving", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    n.close()
    sock.close()
    assert not Notifier("").enabled and not Notifier("").ready()
