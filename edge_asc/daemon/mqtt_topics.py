"""The MQTT topic layout of one device and its Home Assistant discovery payloads (docs/deployment.md, MQTT).

Every topic of a device starts with its prefix (default ``edge-asc/<device_id>``), so that many devices
share one broker without clashing and ``edge-asc/+/scene`` follows the scene of the whole fleet:

=========================  =========  =============================================================
``PREFIX/availability``    retained   ``online`` / ``offline`` (the last will: a killed daemon reads offline)
``PREFIX/scene``           retained   the current scene's label (``unknown`` and ``silence`` are labels)
``PREFIX/attributes``      retained   JSON: the socket's ``scene`` event without ``type`` and ``v``
``PREFIX/status``          retained   JSON: the socket's ``status`` event, every status_interval
``PREFIX/k``, ``PREFIX/mode``  retained   the decision policy now
``PREFIX/k/set``, ``PREFIX/mode/set``  in   commands: an integer k, a mode name (validated like ``set``)
``PREFIX/error``           -          JSON ``error`` event: a refused command
``PREFIX/segment``         -          JSON ``segment`` events, only with mqtt.segments
=========================  =========  =============================================================

Home Assistant discovery (retained, under ``DISCOVERY/<component>/edge-asc-<device_id>/<object>/config``):
one device with a scene sensor (state, attributes, icon), a confidence sensor, a ``number`` for k and a
``select`` for the mode, each with the availability topic and a unique id built from the device id.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from edge_asc import __version__
from edge_asc.daemon.config import MqttConfig
from edge_asc.runtime.decision import MAX_K, MODES

ONLINE, OFFLINE = "online", "offline"
HA_BIRTH = ONLINE  # Home Assistant's birth message on DISCOVERY/status


def default_device_id() -> str:
    """The host name, with characters topics and Home Assistant ids do not take replaced by -."""
    name = socket.gethostname().split(".")[0] or "edge-asc"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64]


@dataclass(frozen=True)
class Topics:
    """Where one device publishes and listens."""

    device_id: str
    prefix: str
    discovery_prefix: str

    @classmethod
    def of(cls, cfg: MqttConfig) -> "Topics":
        device_id = cfg.device_id or default_device_id()
        return cls(device_id, cfg.topic_prefix or f"edge-asc/{device_id}", cfg.discovery_prefix)

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def scene(self) -> str:
        return f"{self.prefix}/scene"

    @property
    def attributes(self) -> str:
        return f"{self.prefix}/attributes"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def k(self) -> str:
        return f"{self.prefix}/k"

    @property
    def mode(self) -> str:
        return f"{self.prefix}/mode"

    @property
    def error(self) -> str:
        return f"{self.prefix}/error"

    @property
    def segment(self) -> str:
        return f"{self.prefix}/segment"

    @property
    def k_set(self) -> str:
        return f"{self.prefix}/k/set"

    @property
    def mode_set(self) -> str:
        return f"{self.prefix}/mode/set"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    @property
    def node_id(self) -> str:
        return f"edge-asc-{self.device_id}"


def discovery(topics: Topics, model_version: str) -> dict[str, str]:
    """Discovery topic -> JSON payload, for every entity of this device."""
    node = topics.node_id
    device = {
        "identifiers": [node],
        "name": f"edge-asc {topics.device_id}",
        "manufacturer": "edge-asc",
        "model": f"acoustic scene classifier (model {model_version})",
        "sw_version": __version__,
    }
    common = {"availability_topic": topics.availability, "payload_available": ONLINE, "payload_not_available": OFFLINE, "device": device}
    entities = {
        ("sensor", "scene"): {
            "name": "Scene", "state_topic": topics.scene, "json_attributes_topic": topics.attributes, "icon": "mdi:waveform",
        },
        ("sensor", "confidence"): {
            "name": "Scene confidence", "state_topic": topics.attributes, "value_template": "{{ value_json.confidence }}",
            "state_class": "measurement", "icon": "mdi:vote",
        },
        ("number", "k"): {
            "name": "Segments per decision", "state_topic": topics.k, "command_topic": topics.k_set,
            "min": 1, "max": MAX_K, "step": 1, "mode": "box", "icon": "mdi:counter", "entity_category": "config",
        },
        ("select", "mode"): {
            "name": "Decision mode", "state_topic": topics.mode, "command_topic": topics.mode_set,
            "options": list(MODES), "icon": "mdi:tune", "entity_category": "config",
        },
    }
    out = {}
    for (component, obj), entity in entities.items():
        payload = {**entity, "unique_id": f"{node}-{obj}", "object_id": f"{node}-{obj}".replace("-", "_"), **common}
        out[f"{topics.discovery_prefix}/{component}/{node}/{obj}/config"] = json.dumps(payload, separators=(",", ":"))
    return out
