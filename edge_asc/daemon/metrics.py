"""Prometheus metrics of the daemon (prometheus-client), served over HTTP at metrics.listen.

Counted as they happen (the worker's cost is an in-memory increment, no I/O): decisions per label and the
per-stage processing time of every segment (histograms ``edge_asc_stage_seconds{stage=...}``, the stages of
runtime.pipeline). Read at scrape time, on the HTTP server's thread, from the daemon's ``status`` and the
event server's per-client statistics: segments, overflows, dropped events (in all and per connected
client), subscribers, source up, MQTT connected, enrolled items, k. The process collector adds
``process_resident_memory_bytes``, CPU seconds and open files.

prometheus-client rather than a hand-written exposition: it is the reference implementation of the text
format, pure Python without dependencies, and imported only when metrics are on (bench/bench_mqtt.py
measures its import time and memory).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from edge_asc.protocol.addresses import ServerError
from edge_asc.protocol.connection import ClientStats
from edge_asc.protocol.messages import Event, Scene, Status
from edge_asc.runtime.pipeline import STAGES, SegmentResult

log = logging.getLogger(__name__)

# seconds; a segment's stages take about 1 to 20 ms on a Raspberry Pi 4 (docs/deployment.md)
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class Probes:
    """What the metrics read from the daemon at scrape time (on the HTTP thread)."""

    status: Callable[[], Status]
    clients: Callable[[], tuple[ClientStats, ...]]
    source_up: Callable[[], bool]
    enrolled_items: Callable[[], int]
    mqtt_dropped: Callable[[], int] | None = None  # scenes and segments MQTT did not publish (None: MQTT off)


class _Snapshot:
    """A prometheus collector of the values the daemon already keeps."""

    def __init__(self, probes: Probes) -> None:
        self.probes = probes

    def describe(self):
        return []  # nothing is collected when registering

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self.probes
        st = p.status()
        yield CounterMetricFamily("edge_asc_segments", "300 ms segments processed", value=st.segments)
        yield CounterMetricFamily("edge_asc_overflows", "audio blocks lost before the worker saw them (ring or device overflows)", value=st.overflows)
        yield CounterMetricFamily("edge_asc_dropped_events", "socket events lost by slow clients since start, all clients", value=st.drops)
        per_client = CounterMetricFamily("edge_asc_client_dropped_events", "socket events lost by each connected client", labels=["client", "peer"])
        for c in p.clients():
            per_client.add_metric([str(c.id), c.peer], c.dropped)
        yield per_client
        yield GaugeMetricFamily("edge_asc_subscribers", "clients connected to the socket", value=st.subscribers)
        yield GaugeMetricFamily("edge_asc_source_up", "1 while the audio source delivers audio, 0 while it is lost", value=1 if p.source_up() else 0)
        yield GaugeMetricFamily("edge_asc_enrolled_items", "enrolled segments searched with the index", value=p.enrolled_items())
        yield GaugeMetricFamily("edge_asc_k", "segments per decision now", value=st.k)
        if st.mqtt_connected is not None:
            yield GaugeMetricFamily("edge_asc_mqtt_connected", "1 while connected to the MQTT broker", value=1 if st.mqtt_connected else 0)
        if p.mqtt_dropped is not None:
            yield CounterMetricFamily("edge_asc_mqtt_dropped", "scenes and segments not published on MQTT (broker away: only the latest state is kept)", value=p.mqtt_dropped())


class Metrics:
    """The registry, the worker's counters and the HTTP server."""

    def __init__(self, address: tuple[str, int], probes: Probes) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

        self.address = address
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.decisions = Counter("edge_asc_decisions", "scene decisions per label", ["label"], registry=self.registry)
        stage = Histogram("edge_asc_stage_seconds", "processing time of one segment per stage", ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self._stages = tuple(stage.labels(name) for name in STAGES)
        self.registry.register(_Snapshot(probes))
        self._server = None

    def on_segment(self, seg: SegmentResult) -> None:
        for child, seconds in zip(self._stages, seg.timings):
            child.observe(seconds)

    def on_event(self, event: Event) -> None:
        if isinstance(event, Scene):
            self.decisions.labels(event.label).inc()

    def start(self) -> None:
        from prometheus_client import start_http_server

        host, port = self.address
        try:
            self._server, _ = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise ServerError(f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        log.info("metrics: serving Prometheus metrics on http://%s:%d/metrics", host, port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
