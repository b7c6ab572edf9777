"""The daemon's MQTT publisher (paho-mqtt): scenes, attributes, status and availability, Home Assistant
discovery, and the k / mode command topics. The topic layout is in daemon/mqtt_topics.py.

Threads: the worker only calls ``offer`` (a deque append under a lock no one holds across I/O), so it never
waits for the broker. This module's publisher thread hands the messages to paho, whose own network thread
(``loop_start``) talks to the broker, connects, and reconnects with back-off (mqtt.reconnect_min doubling up
to reconnect_max) whether the broker is down at start or goes away later.

Bounded while disconnected: scenes and segments are not queued for a broker that is away. Only the latest
scene and the latest status are kept; on every (re)connection the device publishes ``online``, its
discovery, k, mode, the latest scene with its attributes and the latest status, all retained, so that a
subscriber sees the current state and no backlog. While connected, at most QUEUE_LIMIT scenes and
QUEUE_LIMIT segments wait for the publisher thread (the oldest are dropped and counted); paho holds at most
PAHO_QUEUE_LIMIT messages not yet acknowledged.

Commands: ``PREFIX/k/set`` (an integer) and ``PREFIX/mode/set`` (a mode name) become a protocol ``set``
request, validated by the protocol's own code (edge_asc.protocol.messages.Set) and handled by the daemon as
a socket request is; a refused payload is logged and answered on ``PREFIX/error``, and changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from edge_asc.daemon.config import MqttConfig, parse_mqtt_url
from edge_asc.daemon.mqtt_topics import HA_BIRTH, OFFLINE, ONLINE, Topics, discovery
from edge_asc.protocol.messages import BAD_REQUEST, Error, Event, Request, Scene, Segment, Status, preview
from edge_asc.protocol.records import ProtocolError

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256  # scenes (and segments) waiting for the publisher thread while connected
PAHO_QUEUE_LIMIT = 512  # messages paho keeps until the broker acknowledges them
FLUSH_TIMEOUT_S = 2.0  # how long stop() waits for the last messages to reach the broker
CONNECT_TIMEOUT_S = 5.0  # paho's TCP/TLS connect timeout


def read_password(cfg: MqttConfig) -> str | None:
    """The password: mqtt.password, or the first line of mqtt.password_file, which others must not be able to
    read. Raises ValueError (never with the password in it)."""
    if cfg.password_file is None:
        return cfg.password
    path = Path(cfg.password_file)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"mqtt.password_file {path}: cannot read it ({exc.__class__.__name__}: {getattr(exc, 'strerror', None) or 'not UTF-8'})") from None
    if mode & stat.S_IROTH:
        raise ValueError(f"mqtt.password_file {path} is readable by everyone (mode {stat.S_IMODE(mode):04o}); chmod o-rwx it (0600 or 0640)")
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ValueError(f"mqtt.password_file {path}: the first line is empty")
    return lines[0]


def check_tls_files(cfg: MqttConfig) -> None:
    """mqtts: the CA, certificate and key files must be readable (a missing CA would fail only at connect)."""
    for name in ("tls_ca", "tls_cert", "tls_key"):
        path = getattr(cfg, name)
        if path is not None and not os.access(path, os.R_OK):
            why = "does not exist" if not Path(path).exists() else "is not readable by this user"
            raise ValueError(f"mqtt.{name} {path} {why}")


def command_request(kind: str, payload: bytes) -> Request:
    """The ``set`` request of a k / mode command payload; ProtocolError names what is wrong."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ProtocolError(f"{kind}: not UTF-8 text") from None
    if kind == "mode":
        return Request.from_json({"type": "set", "mode": text})
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError(f"k: expected an integer, got {text[:40]!r}") from None
    if isinstance(value, float) and value.is_integer():  # Home Assistant's number entity may send 5.0
        value = int(value)
    return Request.from_json({"type": "set", "k": value})


def _payload(event: Event) -> str:
    data = event.to_dict()
    del data["type"], data["v"]
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class MqttPublisher:
    """Connects to the broker of ``cfg`` and publishes what the daemon ``offer``s. ``on_request`` handles a
    validated ``set`` request (the daemon's socket handler) and returns the new Status, or raises
    ProtocolError."""

    def __init__(self, cfg: MqttConfig, model_version: str, on_request: Callable[[Request], object]) -> None:
        import paho.mqtt.client as paho  # imported only when MQTT is configured

        self.cfg = cfg
        self.topics = Topics.of(cfg)
        self.model_version = model_version
        self.on_request = on_request
        scheme, self.host, self.port = parse_mqtt_url(cfg.url)
        self.broker = f"{scheme}://{self.host}:{self.port}"
        password = read_password(cfg)
        self.client_id = cfg.client_id or self.topics.node_id
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if cfg.username is not None or password is not None:
            client.username_pw_set(cfg.username or "", password)
        if scheme == "mqtts":
            check_tls_files(cfg)
            client.tls_set(ca_certs=cfg.tls_ca, certfile=cfg.tls_cert, keyfile=cfg.tls_key)
        client.will_set(self.topics.availability, OFFLINE, qos=cfg.qos, retain=True)
        client.reconnect_delay_set(max(1, round(cfg.reconnect_min)), max(1, round(cfg.reconnect_max)))
        client.max_queued_messages_set(PAHO_QUEUE_LIMIT)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.on_connect, client.on_disconnect, client.on_connect_fail = self._on_connect, self._on_disconnect, self._on_connect_fail
        client.on_message = self._on_message
        self.client = client
        self._wake = threading.Condition(threading.Lock())
        self._scenes: deque[Scene] = deque()
        self._segments: deque[Segment] = deque()
        self._status: Status | None = None  # the latest status, not yet published
        self._latest: Scene | None = None  # the latest scene: republished on every (re)connection
        self._latest_status: Status | None = None
        self._resync = False  # just (re)connected: publish everything
        self._stopping = False
        self._policy: tuple[int, str] | None = None  # the k and mode last published
        self._failures = 0  # connection attempts failed in a row
        self.connected = False
        self.dropped = 0  # scenes and segments not published (queue full, or the broker away)
        self._thread = threading.Thread(target=self._run, name="edge-asc-mqtt", daemon=True)

    # --- the worker's side --------------------------------------------------------------------------
    def offer(self, event: Event) -> None:
        """Hand over an event (never blocks on the network)."""
        with self._wake:
            if isinstance(event, Scene):
                self._latest = event
                self._enqueue(self._scenes, event)
            elif isinstance(event, Status):
                self._status = self._latest_status = event
            elif isinstance(event, Segment) and self.cfg.segments:
                self._enqueue(self._segments, event)
            else:
                return
            self._wake.notify_all()

    def _enqueue(self, queue: deque, event: Event) -> None:
        if not self.connected:
            self.dropped += 1  # kept as the latest state only
            return
        if len(queue) >= QUEUE_LIMIT:
            queue.popleft()
            self.dropped += 1
        queue.append(event)

    # --- life cycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        log.info("MQTT: connecting to %s as %s (topics %s/...)", self.broker, self.client_id, self.topics.prefix)
        self.client.connect_async(self.host, self.port, self.cfg.keepalive)
        self.client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """Publish what is waiting, then ``offline`` (retained), and disconnect."""
        if self._thread.ident is None:
            return  # never started (the daemon failed to start)
        with self._wake:  # a short file may end before the first connection: give its last scene a chance
            deadline = time.monotonic() + FLUSH_TIMEOUT_S
            while self._latest is not None and not self.connected and (left := deadline - time.monotonic()) > 0:
                self._wake.wait(left)
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(FLUSH_TIMEOUT_S * 2)
        self.client.disconnect()
        self.client.loop_stop()

    # --- paho's network thread ----------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._on_connect_fail(client, userdata, reason)
            return
        log.info("MQTT: connected to %s", self.broker)
        self._failures = 0
        subs = [(self.topics.k_set, self.cfg.qos), (self.topics.mode_set, self.cfg.qos)]
        if self.cfg.discovery:
            subs.append((self.topics.ha_status, self.cfg.qos))
        client.subscribe(subs)
        with self._wake:
            self.connected, self._resync = True, True
            self._wake.notify_all()

    def _on_connect_fail(self, client, userdata, reason=None) -> None:
        self._failures += 1
        why = f" ({reason})" if reason is not None else ""
        (log.warning if self._failures == 1 else log.debug)("MQTT: cannot connect to %s%s; retrying with back-off", self.broker, why)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._wake:
            was, self.connected = self.connected, False
        if was and not self._stopping:
            log.warning("MQTT: connection to %s lost (%s); reconnecting, the latest state is kept", self.broker, reason)

    def _on_message(self, client, userdata, message) -> None:
        topics = self.topics
        if message.topic == topics.ha_status:
            if message.payload == HA_BIRTH.encode():
                log.info("MQTT: Home Assistant is online; publishing discovery and state again")
                with self._wake:
                    self._resync = True
                    self._wake.notify_all()
            return
        kind = "k" if message.topic == topics.k_set else "mode"
        try:
            status = self.on_request(command_request(kind, message.payload))
        except ProtocolError as exc:
            log.warning("MQTT: command on %s refused: %s", message.topic, exc)
            error = Error(BAD_REQUEST, str(exc), request=preview(message.payload))
            client.publish(topics.error, _payload(error), qos=self.cfg.qos)
            return
        if isinstance(status, Status):
            self.offer(status)

    # --- the publisher thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not (self._stopping or self._resync or self._scenes or self._segments or self._status):
                        self._wake.wait()
                    resync, self._resync = self._resync and self.connected, False
                    scenes = [] if resync else list(self._scenes)
                    segments, status = list(self._segments), self._status
                    self._scenes.clear(), self._segments.clear()
                    self._status = None
                    latest, latest_status, stopping = self._latest, self._latest_status, self._stopping
                    if not self.connected:  # nothing is queued for an absent broker: the latest state waits
                        scenes, segments, status = [], [], None
                if resync:
                    self._publish_state(latest, latest_status)
                else:
                    for scene in scenes:
                        self._publish_scene(scene)
                    if status is not None:
                        self._publish_status(status)
                for segment in segments:
                    self._publish(self.topics.segment, _payload(segment), retain=False)
                if stopping:
                    break
        except Exception:  # the daemon goes on without MQTT rather than stopping
            log.exception("MQTT: the publisher failed; no more MQTT messages from this daemon")
            return
        if self.connected:
            self._publish(self.topics.availability, OFFLINE, retain=True).wait_for_publish(FLUSH_TIMEOUT_S)

    def _publish(self, topic: str, payload: str, retain: bool | None = None):
        return self.client.publish(topic, payload, qos=self.cfg.qos, retain=self.cfg.retain if retain is None else retain)

    def _publish_state(self, latest: Scene | None, status: Status | None) -> None:
        """After a (re)connection or Home Assistant's birth: everything a fresh subscriber needs."""
        self._publish(self.topics.availability, ONLINE, retain=True)
        if self.cfg.discovery:
            for topic, payload in discovery(self.topics, self.model_version).items():
                self._publish(topic, payload, retain=True)
        self._policy = None
        if status is not None:
            self._publish_status(status)
        if latest is not None:
            self._publish_scene(latest)

    def _publish_scene(self, scene: Scene) -> None:
        self._publish(self.topics.attributes, _payload(scene))  # attributes first: HA reads them with the state
        self._publish(self.topics.scene, scene.label)
        self._publish_policy(scene.k, scene.mode)

    def _publish_status(self, status: Status) -> None:
        self._publish(self.topics.status, _payload(status))
        self._publish_policy(status.k, status.mode)

    def _publish_policy(self, k: int, mode: str) -> None:
        if self._policy != (k, mode):
            self._policy = (k, mode)
            self._publish(self.topics.k, str(k))
            self._publish(self.topics.mode, mode)
