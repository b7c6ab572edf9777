"""The daemon's configuration (``edge-asc run --config FILE``): frozen dataclasses, one per section.

Every key is optional. Each field carries its help text and unit in its metadata, and that single
description produces ``edge-asc run --dump-config`` (the commented default YAML) and the key table in
docs/config.md. Loading goes through edge_asc.config: an unknown key is an error naming it and the
accepted keys, a bad value names the accepted values.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from edge_asc.bounded import cut
from edge_asc.config import ConfigError, apply_overrides, from_dict, load_yaml
from edge_asc.contract import MAX_EF
from edge_asc.dsp.audio_io import MAX_RATE, MIN_RATE, rate_problem
from edge_asc.protocol.connection import QUEUE_SIZE, SLOW_POLICIES
from edge_asc.protocol.limits import MAX_CLIENTS, REQUEST_RATE
from edge_asc.runtime.decision import DEFAULT_K_MAX, MAX_K, MODES, TIE_BREAKS, check_k
from edge_asc.runtime.pipeline import SILENCE_DBFS
from edge_asc.runtime.search import UNKNOWN_RATIO

SOURCE_FORMS = ("mic", "mic:NAME_OR_INDEX", "file:PATH", "stdin")
LATENCIES = ("low", "high")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_WAIT_S = 3600.0  # the longest no_data_timeout / retry wait accepted


def _f(default: Any, help: str, unit: str = "", choices: tuple | None = None, repr: bool = True) -> Any:
    meta: dict[str, Any] = {"help": help, "unit": unit}
    if choices is not None:
        meta["choices"] = choices
    if isinstance(default, type):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta, repr=repr)


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``source`` string."""

    kind: str  # mic | file | stdin
    arg: str | None = None  # mic: device index or name substring (None: the default input); file: the path

    @classmethod
    def parse(cls, spec: str) -> "SourceSpec":
        kind, sep, arg = spec.partition(":")
        if kind == "mic":
            return cls("mic", arg or None)
        if kind == "file" and arg:
            return cls("file", arg)
        if kind == "stdin" and not sep:
            return cls("stdin")
        raise ValueError(f"source {cut(spec)} is not accepted; accepted forms: {', '.join(SOURCE_FORMS)}")

    def __str__(self) -> str:
        return self.kind + (f":{self.arg}" if self.arg is not None else "")


def _check_seconds(name: str, value: float) -> None:
    """A wait in seconds: finite, positive, at most MAX_WAIT_S (NaN and inf fail every comparison)."""
    if not (math.isfinite(value) and 0 < value <= MAX_WAIT_S):
        raise ValueError(f"{name} must be a positive number of seconds up to {MAX_WAIT_S:g}, got {value}")


@dataclass(frozen=True)
class AudioConfig:
    samplerate: int | None = _f(
        None,
        "microphone: the rate to open the device at (null: the model's rate if the device takes it, else the "
        f"device's default rate); stdin: the rate of the raw PCM (null: the model's rate). From {MIN_RATE} to {MAX_RATE} Hz "
        "(files too); resampled to the model's rate",
        "Hz",
    )
    channels: int = _f(1, "channels to capture (microphone) or interleaved in the PCM (stdin); mixed to mono", "channels")
    blocksize: int = _f(512, "frames per audio callback or per read from a file/stdin (0: PortAudio chooses)", "frames")
    latency: str = _f("low", "PortAudio's suggested input latency", "", LATENCIES)
    ring_seconds: float = _f(4.0, "length of the ring buffer between the audio callback and the worker", "s")
    realtime: bool = _f(True, "file sources: pace the file to wall-clock time (false: as fast as the worker goes)")
    no_data_timeout: float = _f(5.0, "the microphone counts as lost when no audio arrives for this long", "s")
    retry_min: float = _f(0.5, "first wait before reopening a lost microphone; doubles after each failure", "s")
    retry_max: float = _f(10.0, "longest wait between two attempts to reopen a lost microphone", "s")

    def __post_init__(self) -> None:
        if self.samplerate is not None and rate_problem(self.samplerate):
            raise ValueError(f"samplerate must be from {MIN_RATE} to {MAX_RATE} Hz or null, got {self.samplerate}")
        if not 1 <= self.channels <= 64:
            raise ValueError(f"channels must be from 1 to 64, got {self.channels}")
        if not 0 <= self.blocksize <= 65536:
            raise ValueError(f"blocksize must be from 0 to 65536 frames, got {self.blocksize}")
        if not 0.5 <= self.ring_seconds <= 60:
            raise ValueError(f"ring_seconds must be from 0.5 to 60, got {self.ring_seconds}")
        for name in ("no_data_timeout", "retry_min", "retry_max"):
            _check_seconds(name, getattr(self, name))
        if self.retry_max < self.retry_min:
            raise ValueError(f"retry_max must be at least retry_min ({self.retry_min} s), got {self.retry_max}")


@dataclass(frozen=True)
class DecisionConfig:
    k: int = _f(3, f"segments per decision (1 to {MAX_K}); each segment is 300 ms", "segments")
    mode: str = _f(
        "window", "window: a decision after every k segments; sliding: after every segment over the last k; adaptive: as soon as "
        "the vote cannot change any more, at the latest after k_max segments", "", MODES,
    )
    k_max: int = _f(DEFAULT_K_MAX, f"adaptive: the most segments one decision waits for (1 to {MAX_K})", "segments")
    neighbours: int = _f(1, "nearest neighbours per segment; more than 1 gives the segment their majority label", "items")
    tie_break: str = _f(
        "distance", "equal votes: the label with the smallest summed distance, then the earlier label (distance), or "
        "only the earlier label in the model's label list (label_order)", "", TIE_BREAKS,
    )

    enrolled_only: bool = _f(
        False, "only enrolled places are candidates (edge-asc enroll); a segment too far from its nearest place "
        "(unknown_ratio, or unknown_threshold, or the place's own threshold) votes unknown",
    )
    unknown_threshold: float | None = _f(
        None, "enrolled_only: one distance threshold (squared L2) for every place, instead of each place's own threshold "
        "calibrated at enrolment (null: each place's own)",
    )
    unknown_ratio: float | None = _f(
        UNKNOWN_RATIO, "enrolled_only, without unknown_threshold: a segment votes its nearest place only if that place is at most this "
        "many times as far as the nearest item of the model's index, both distances squared L2 (so 0.81 means 0.9 times the "
        "plain distance; the ratio test of bench/bench_enroll.py); null: each place's own threshold",
    )
    silence_dbfs: float | None = _f(
        SILENCE_DBFS, "a segment whose level (RMS of its 300 ms, full scale 1.0) is below this votes silence instead of a scene; "
        "the default lies 10 dB below the quietest segment of real recordings and above 16-bit dither (bench/bench_silence.py); "
        "null: no gate", "dBFS",
    )

    def __post_init__(self) -> None:
        check_k(self.k)
        check_k(self.k_max, "k_max")
        if not 1 <= self.neighbours <= 100:
            raise ValueError(f"neighbours must be from 1 to 100, got {self.neighbours}")
        if self.unknown_ratio is not None and not (math.isfinite(self.unknown_ratio) and self.unknown_ratio > 0):
            raise ValueError(f"unknown_ratio must be a positive number or null, got {self.unknown_ratio}")
        if self.unknown_threshold is not None and not (math.isfinite(self.unknown_threshold) and self.unknown_threshold > 0):
            raise ValueError(f"unknown_threshold must be a positive number or null, got {self.unknown_threshold}")
        if self.silence_dbfs is not None and (isinstance(self.silence_dbfs, bool) or not math.isfinite(self.silence_dbfs) or self.silence_dbfs >= 0):
            raise ValueError(f"silence_dbfs must be a negative number of dBFS or null, got {self.silence_dbfs}")


@dataclass(frozen=True)
class ServerConfig:
    socket: Path | None = _f(None, "Unix socket path, created with mode 0660 (null: $XDG_RUNTIME_DIR/edge-asc/edge-asc.sock, else /run/edge-asc/edge-asc.sock if /run/edge-asc exists (systemd RuntimeDirectory), else /tmp/edge-asc-$UID/edge-asc.sock)")
    tcp: str | None = _f(None, "also listen on TCP, as HOST:PORT (for example 127.0.0.1:8765); null: no TCP")
    queue_size: int = _f(QUEUE_SIZE, "events queued per client before the slow-client policy applies", "events")
    slow_policy: str = _f(SLOW_POLICIES[0], "a client whose queue is full loses its oldest events (counted and reported to it) or is disconnected", "", SLOW_POLICIES)
    wait_for_client: bool = _f(False, "start the audio source only once the first client has connected (demos, tests: no event is missed)")
    allow_enroll: bool = _f(False, "accept enroll and forget requests on the socket (anyone who can connect may then change the enrolled places)")
    tcp_token_file: Path | None = _f(None, "TCP clients that send this file's token in an auth request may change settings; without it (or when null) TCP clients only read events. The file must not be readable by other users")
    max_clients: int = _f(MAX_CLIENTS, "connected clients at most, on the Unix socket and again on TCP (counted apart); more are told busy and closed", "clients")
    request_rate: float = _f(REQUEST_RATE, "requests per second one client may sustain (bursts of twice that); excess ones get a rate_limited error", "requests/s")

    def __post_init__(self) -> None:
        if self.tcp is not None:
            parse_hostport(self.tcp)
        if not 1 <= self.queue_size <= 100000:
            raise ValueError(f"queue_size must be from 1 to 100000, got {self.queue_size}")
        if not 1 <= self.max_clients <= 10000:
            raise ValueError(f"max_clients must be from 1 to 10000, got {self.max_clients}")
        if not (math.isfinite(self.request_rate) and 0.1 <= self.request_rate <= 100000):
            raise ValueError(f"request_rate must be from 0.1 to 100000, got {self.request_rate}")


@dataclass(frozen=True)
class InferenceConfig:
    threads: int = _f(1, "onnxruntime intra-op threads", "threads")
    ef: int | None = _f(None, "hnswlib search breadth (null: the value in the index manifest)", "items")

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 64:
            raise ValueError(f"threads must be from 1 to 64, got {self.threads}")
        if self.ef is not None and not 1 <= self.ef <= MAX_EF:
            raise ValueError(f"ef must be from 1 to {MAX_EF} or null, got {self.ef}")


@dataclass(frozen=True)
class MqttConfig:
    url: str | None = _f(None, "the MQTT broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS); null: no MQTT (docs/deployment.md, MQTT)")
    device_id: str | None = _f(None, "this device's id in topics and in Home Assistant: letters, digits, - and _ (null: the host name)")
    client_id: str | None = _f(None, "the MQTT client id (null: edge-asc-DEVICE_ID)")
    username: str | None = _f(None, "user name at the broker (null: none)")
    password: str | None = _f(None, "password at the broker; prefer password_file, readable by the service user only", repr=False)
    password_file: Path | None = _f(None, "a file whose first line is the password (mode 0600/0640: a file others can read is refused)")
    tls_ca: Path | None = _f(None, "mqtts: CA certificate file that signed the broker's (null: the system's CAs)")
    tls_cert: Path | None = _f(None, "mqtts: client certificate file, for brokers that ask for one (with tls_key)")
    tls_key: Path | None = _f(None, "mqtts: the client certificate's private key file")
    keepalive: int = _f(30, "seconds between two keep-alive pings; the broker sends the last will after 1.5 times this", "s")
    qos: int = _f(1, "MQTT quality of service of what the daemon publishes and subscribes to (0, 1 or 2)")
    topic_prefix: str | None = _f(None, "topics of this device start with this (null: edge-asc/DEVICE_ID)")
    retain: bool = _f(True, "publish the scene, its attributes, k, mode and status retained (a new subscriber gets them at once)")
    segments: bool = _f(False, "also publish one message per 300 ms segment (PREFIX/segment)")
    discovery: bool = _f(True, "publish Home Assistant MQTT discovery (and again when Home Assistant's birth message arrives)")
    discovery_prefix: str = _f("homeassistant", "Home Assistant's discovery prefix")
    reconnect_min: float = _f(1.0, "first wait before reconnecting to a lost broker; doubles after each failure", "s")
    reconnect_max: float = _f(60.0, "longest wait between two attempts to reach the broker", "s")

    def __post_init__(self) -> None:
        if self.url is not None:
            parse_mqtt_url(self.url)
        if self.device_id is not None and not _ID.fullmatch(self.device_id):
            raise ValueError(f"device_id must be 1 to 64 letters, digits, - or _, got {self.device_id!r}")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.url is not None and not self.url.startswith("mqtts:") and (self.tls_ca or self.tls_cert):
            raise ValueError("tls_ca, tls_cert and tls_key are for mqtts:// URLs; this url is not TLS")
        if not 5 <= self.keepalive <= 3600:
            raise ValueError(f"keepalive must be from 5 to 3600 s, got {self.keepalive}")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {self.qos}")
        for name in ("topic_prefix", "discovery_prefix"):
            value = getattr(self, name)
            if value is not None and (not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "#+\0")):
                raise ValueError(f"{name} must be a topic without wildcards (+ #) and without a leading or trailing /, got {value!r}")
        for name in ("reconnect_min", "reconnect_max"):
            _check_seconds(name, getattr(self, name))
        if self.reconnect_max < self.reconnect_min:
            raise ValueError(f"reconnect_max must be at least reconnect_min ({self.reconnect_min} s), got {self.reconnect_max}")


@dataclass(frozen=True)
class MetricsConfig:
    listen: str | None = _f(None, "serve Prometheus metrics over HTTP at HOST:PORT, or PORT for 127.0.0.1:PORT (null: no metrics)")

    def __post_init__(self) -> None:
        if self.listen is not None:
            parse_hostport(self.listen if ":" in self.listen else f"127.0.0.1:{self.listen}", "metrics.listen")

    @property
    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        return parse_hostport(self.listen if ":" in self.listen else f"127.0.0.1:{self.listen}", "metrics.listen")


@dataclass(frozen=True)
class DaemonConfig:
    model: Path | None = _f(None, "ONNX encoder file (null: $EDGE_ASC_MODEL, then models/ of a clone, <prefix>/share/edge-asc/models, /var/lib/edge-asc/models)")
    index: Path | None = _f(None, "index directory with manifest.json (null: $EDGE_ASC_INDEX, then index/ of a clone, <prefix>/share/edge-asc/index, /var/lib/edge-asc/index)")
    enrolled: Path | None = _f(None, "enrolled places directory, searched with the index (null: $EDGE_ASC_ENROLLED, else /var/lib/edge-asc/enrolled if /var/lib/edge-asc is writable, else $XDG_DATA_HOME/edge-asc/enrolled, default ~/.local/share/edge-asc/enrolled)")
    source: str = _f("mic", f"where audio comes from: {' | '.join(SOURCE_FORMS)} (raw s16le PCM on standard input)")
    audio: AudioConfig = _f(AudioConfig, "capture and buffering")
    decision: DecisionConfig = _f(DecisionConfig, "segment labels and the scene vote")
    server: ServerConfig = _f(ServerConfig, "where subscribers connect")
    inference: InferenceConfig = _f(InferenceConfig, "encoder and index search")
    mqtt: MqttConfig = _f(MqttConfig, "publish scenes to an MQTT broker, with Home Assistant discovery")
    metrics: MetricsConfig = _f(MetricsConfig, "Prometheus metrics")
    status_interval: float = _f(5.0, "seconds between two status events", "s")
    log_level: str = _f("INFO", "logging level of the daemon", "", LOG_LEVELS)

    def __post_init__(self) -> None:
        SourceSpec.parse(self.source)
        if not 0.1 <= self.status_interval <= 3600:
            raise ValueError(f"status_interval must be from 0.1 to 3600 s, got {self.status_interval}")

    @property
    def source_spec(self) -> SourceSpec:
        return SourceSpec.parse(self.source)

    def model_path(self) -> Path:
        from edge_asc.paths import default_model_path

        return self.model if self.model is not None else default_model_path()

    def index_path(self) -> Path:
        from edge_asc.paths import default_index_path

        return self.index if self.index is not None else default_index_path()

    def enrolled_path(self) -> Path:
        from edge_asc.paths import default_enrolled_path

        return self.enrolled if self.enrolled is not None else default_enrolled_path()


def parse_hostport(text: str, name: str = "tcp") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{name} must be HOST:PORT such as 127.0.0.1:8765, got {text!r}")
    return host.strip("[]"), int(port)


MQTT_PORTS = {"mqtt": 1883, "mqtts": 8883}  # the default port of each URL scheme
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_mqtt_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of mqtt://HOST[:PORT] or mqtts://HOST[:PORT]. A user or password in the URL is
    refused (the URL is logged; the password belongs in mqtt.password_file)."""
    scheme, sep, rest = url.partition("://")
    if scheme not in MQTT_PORTS or not sep:
        raise ValueError(f"mqtt url must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}")
    if "@" in rest:
        raise ValueError("mqtt url: no user or password in the URL (it is logged); use mqtt.username and mqtt.password_file")
    hostport = rest.rstrip("/")
    if "/" in hostport or not hostport:
        raise ValueError(f"mqtt url must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT] without a path, got {url!r}")
    if hostport.endswith("]") or ":" not in hostport:
        return scheme, hostport.strip("[]"), MQTT_PORTS[scheme]
    host, port = parse_hostport(hostport, "mqtt url's HOST:PORT")
    return scheme, host, port


# --- loading ----------------------------------------------------------------------------------------


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> DaemonConfig:
    """The config file (or the defaults), then ``overrides`` given as dotted keys (None = not given)."""
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    try:
        cfg = from_dict(DaemonConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from exc
    return apply_overrides(cfg, overrides or {})


# --- self-description: the commented default YAML and the docs table ----------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def _describe(meta: Mapping[str, Any]) -> str:
    text = meta.get("help", "")
    if meta.get("unit"):
        text += f" [{meta['unit']}]"
    if meta.get("choices"):
        text += f" (one of: {', '.join(meta['choices'])})"
    return text


def dump_yaml(cfg: DaemonConfig | None = None) -> str:
    """A complete, commented YAML config (the defaults unless ``cfg`` is given) that loads back to ``cfg``."""
    cfg = cfg or DaemonConfig()
    lines = [
        "# edge-asc daemon configuration: edge-asc run --config FILE",
        "# Every key is optional; the values below are the defaults. Command-line flags override this file.",
        "# Check a file with: edge-asc run --config FILE --check-config",
        "",
    ]

    def emit(obj: Any, indent: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                lines.append(f"{indent}{f.name}:  # {_describe(f.metadata)}")
                emit(value, indent + "  ")
            else:
                lines.append(f"{indent}{f.name}: {_scalar(value)}  # {_describe(f.metadata)}")

    emit(cfg, "")
    return "\n".join(lines) + "\n"


def reference_rows(cls: type = DaemonConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, default, unit, description) for every key, in file order (for docs/config.md)."""
    rows = []
    default = cls()
    for f in dataclasses.fields(cls):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend(reference_rows(type(value), f"{prefix}{f.name}."))
        else:
            text = f.metadata.get("help", "")
            if f.metadata.get("choices"):
                text += f"; one of: {', '.join(f.metadata['choices'])}"
            rows.append((prefix + f.name, _scalar(value), f.metadata.get("unit", ""), text))
    return rows


def reference_markdown() -> str:
    out = ["| key | default | unit | meaning |", "|---|---|---|---|"]
    for key, default, unit, text in reference_rows():
        out.append(f"| `{key}` | `{default}` | {unit} | {text.replace('|', '/')} |")
    return "\n".join(out) + "\n"

