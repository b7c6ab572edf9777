"""The unit's resource bounds fit the daemon's own limits (the figures are bench/bench_hostile.py's)."""

from __future__ import annotations

from pathlib import Path

from edge_asc.protocol.limits import MAX_CLIENTS

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge-asc.service"
BASE_FDS = 12  # descriptors the daemon holds with no client (bench_hostile fds: fds_before)
MEASURED_PEAK_MB = 98  # bench_hostile fds: daemon_peak_rss_mb with the shipped model, 64 clients


def _setting(name: str) -> str:
    values = [line.split("=", 1)[1].strip() for line in UNIT.read_text().splitlines() if line.startswith(f"{name}=")]
    assert len(values) == 1, f"{name}= appears {len(values)} times in {UNIT}"
    return values[0]


def test_the_descriptor_limit_holds_every_client_the_daemon_accepts_on_both_transports():
    assert int(_setting("LimitNOFILE")) >= BASE_FDS + 2 * MAX_CLIENTS + 64  # 64: PortAudio, onnxruntime, reloads


def test_the_memory_limit_leaves_room_above_the_measured_peak():
    value = _setting("MemoryMax")
    assert value.endswith("M") and int(value[:-1]) >= 4 * MEASURED_PEAK_MB
