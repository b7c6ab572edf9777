"""The daemon's outlets beside the socket: MQTT (daemon/mqtt.py) and Prometheus metrics (daemon/metrics.py).

The daemon hands every event it publishes on the socket to ``publish`` as well, and every segment to
``on_segment``. Both return at once: MQTT gets the event through a bounded hand-over to its own threads,
metrics count in memory. Nothing here is imported or started when neither is configured.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from edge_asc.daemon.config import DaemonConfig
from edge_asc.daemon.metrics import Probes
from edge_asc.protocol.messages import Event, Request
from edge_asc.runtime.pipeline import SegmentResult


class Outlets:
    def __init__(self, config: DaemonConfig, model_version: str, on_request: Callable[[Request], object], probes: Probes) -> None:
        """Raises ValueError for a setting that cannot work (an unreadable password file or CA)."""
        self.mqtt = self.metrics = None
        if config.mqtt.url is not None:
            from edge_asc.daemon.mqtt import MqttPublisher

            self.mqtt = MqttPublisher(config.mqtt, model_version, on_request)
        if config.metrics.address is not None:
            from edge_asc.daemon.metrics import Metrics

            if self.mqtt is not None:
                probes = dataclasses.replace(probes, mqtt_dropped=lambda: self.mqtt.dropped)
            self.metrics = Metrics(config.metrics.address, probes)
        self.wants_segments = bool(self.mqtt is not None and config.mqtt.segments)

    @property
    def mqtt_connected(self) -> bool | None:
        """None when MQTT is off."""
        return None if self.mqtt is None else self.mqtt.connected

    def describe(self) -> str:
        parts = []
        if self.mqtt is not None:
            parts.append(f"MQTT {self.mqtt.broker} as {self.mqtt.topics.prefix}")
        if self.metrics is not None:
            parts.append("metrics on %s:%d" % self.metrics.address)
        return ", ".join(parts)

    def start(self) -> None:
        if self.metrics is not None:
            self.metrics.start()  # ServerError when the port is taken
        if self.mqtt is not None:
            self.mqtt.start()

    def stop(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.metrics is not None:
            self.metrics.stop()

    def publish(self, event: Event) -> None:
        if self.mqtt is not None:
            self.mqtt.offer(event)
        if self.metrics is not None:
            self.metrics.on_event(event)

    def on_segment(self, seg: SegmentResult) -> None:
        if self.metrics is not None:
            self.metrics.on_segment(seg)
