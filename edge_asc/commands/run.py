"""``edge-asc run``: the daemon. Listens, decides the scene every k segments, tells every subscriber.

    edge-asc run --config /etc/edge-asc/config.yaml
    edge-asc run --source mic:pulse
    edge-asc run --source file:street.flac --realtime
    arecord -f S16_LE -r 16000 -c 1 | edge-asc run --source stdin

Exit codes: 0 stopped by SIGTERM/SIGINT or the end of a file; 2 a bad config, a missing or mismatched
model/index, or an unreadable file; 1 anything else (the socket is taken, the worker failed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edge_asc.commands.common import ARTIFACT_FLAGS, SUPPRESS, add_artifact_arguments, daemon_config, load_runtime
from edge_asc.config import ConfigError

HELP = "run the daemon: classify live audio and publish scene events on a local socket"

log = logging.getLogger(__name__)


FLAGS = ARTIFACT_FLAGS | {  # argparse destination -> daemon config key
    "source": "source", "realtime": "audio.realtime", "rate": "audio.samplerate", "channels": "audio.channels",
    "socket": "server.socket", "tcp": "server.tcp", "wait_for_client": "server.wait_for_client", "threads": "inference.threads",
    "mqtt": "mqtt.url", "device_id": "mqtt.device_id", "metrics": "metrics.listen",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_artifact_arguments(parser)
    parser.add_argument("--source", metavar="SPEC", default=SUPPRESS, help="mic | mic:NAME_OR_INDEX | file:PATH | stdin (raw s16le PCM) (config source, default mic)")
    parser.add_argument(
        "--realtime", action=argparse.BooleanOptionalAction, default=SUPPRESS,
        help="file sources: pace the file to wall-clock time (--no-realtime: as fast as possible)",
    )
    parser.add_argument("--rate", type=int, metavar="HZ", default=SUPPRESS, help="stdin: the PCM's sample rate; mic: the rate to open the device at")
    parser.add_argument("--channels", type=int, metavar="N", default=SUPPRESS, help="stdin: interleaved channels; mic: channels to capture")
    parser.add_argument("--socket", type=Path, metavar="PATH", default=SUPPRESS, help="Unix socket to serve events on (config server.socket; default $XDG_RUNTIME_DIR/edge-asc/edge-asc.sock, else /run/edge-asc/ if it exists, else /tmp/edge-asc-$UID/)")
    parser.add_argument("--tcp", metavar="HOST:PORT", default=SUPPRESS, help="also serve events on TCP (loopback only)")
    parser.add_argument("--threads", type=int, metavar="N", default=SUPPRESS, help="onnxruntime threads")
    parser.add_argument("--wait-for-client", action="store_true", default=SUPPRESS, help="start the source when the first client connects")
    parser.add_argument("--mqtt", metavar="URL", default=SUPPRESS, help="publish scenes to this MQTT broker, mqtt://HOST[:PORT] or mqtts://... (config mqtt.url; the rest of the mqtt section: --dump-config)")
    parser.add_argument("--device-id", metavar="ID", default=SUPPRESS, help="this device's id in MQTT topics and Home Assistant (config mqtt.device_id, default the host name)")
    parser.add_argument("--metrics", metavar="HOST:PORT", default=SUPPRESS, help="serve Prometheus metrics at http://HOST:PORT/metrics; PORT alone: 127.0.0.1 (config metrics.listen)")
    parser.add_argument("--check-config", action="store_true", help="validate the config, the model and the index, then exit")
    parser.add_argument("--dump-config", action="store_true", help="print the complete default config (commented YAML) and exit")


def log_level(args: argparse.Namespace) -> str | None:
    """The config file's log_level; the CLI uses it unless --log-level was given."""
    try:
        return daemon_config(args, FLAGS).log_level
    except ConfigError:
        return None  # run() reports the error


def run(args: argparse.Namespace) -> int:
    from edge_asc.daemon.config import dump_yaml

    if args.dump_config:
        sys.stdout.write(dump_yaml())
        return 0
    cfg = daemon_config(args, FLAGS)  # ConfigError -> exit 2 (cli)

    from edge_asc.contract import ArtifactError
    from edge_asc.daemon.sources import SourceError, make_source

    try:
        encoder, index = load_runtime(cfg)
    except (ArtifactError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    try:
        source = make_source(cfg.source_spec, cfg.audio, encoder.meta.feature_config.sample_rate)
    except SourceError as exc:
        log.error("%s", exc)
        return 2

    from edge_asc.daemon.daemon import Daemon
    from edge_asc.protocol.addresses import ServerError
    from edge_asc.protocol.limits import TokenError

    try:
        daemon = Daemon(cfg, encoder, index, source)  # checks the settings against the model and index
    except ValueError as exc:  # settings the loaded index cannot satisfy (decision.neighbours)
        log.error("%s", exc)
        return 2
    except (ServerError, TokenError) as exc:  # a bad or non-loopback address, an unusable TCP token file
        log.error("%s", exc)
        return 2
    if args.check_config:
        where = args.config or "the defaults"
        print(
            f"config OK ({where}): model {cfg.model_path()} ({len(encoder.meta.labels)} labels), "
            f"index {cfg.index_path()} ({len(index)} items), source {source.description}, "
            f"k={cfg.decision.k}, mode={cfg.decision.mode}, socket {daemon.socket_path}"
            + (f", {daemon.outlets.describe()}" if daemon.outlets.describe() else "")
        )
        return 0
    try:
        code = daemon.run()
    except ServerError as exc:  # the socket is taken by a running daemon, or cannot be created
        log.error("%s", exc)
        return 1
    # PortAudio's exit handler would block on a frozen sound server until it thaws; a worker still inside
    # onnxruntime when the interpreter ends aborts the process (SIGABRT, a core dump for systemd)
    stuck = "the audio device is still frozen" if source.stuck else "the worker is still busy" if daemon.worker_stuck else ""
    if stuck:
        log.warning("%s; exiting without waiting for it", stuck)
        logging.shutdown()
        os._exit(code)
    return code
