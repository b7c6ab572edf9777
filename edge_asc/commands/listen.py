"""``edge-asc listen``: print the daemon's events as JSON lines on stdout."""

from __future__ import annotations

import argparse
import logging
import os
import sys

HELP = "print the running daemon's events (hello, scene, status, error; segment on request) as JSON lines"

log = logging.getLogger(__name__)


def _event_list(text: str) -> tuple[str, ...]:
    from edge_asc.protocol.messages import STREAM_EVENTS

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if name not in STREAM_EVENTS:
            raise argparse.ArgumentTypeError(f"{name!r} is not an event type; accepted: {', '.join(STREAM_EVENTS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's Unix socket (default: the first that exists of $XDG_RUNTIME_DIR/edge-asc/edge-asc.sock, "
        "/run/edge-asc/edge-asc.sock, /tmp/edge-asc-$UID/edge-asc.sock)",
    )
    where.add_argument("--tcp", metavar="HOST:PORT", help="the daemon's TCP address instead of a Unix socket")
    parser.add_argument(
        "--events",
        type=_event_list,
        default=None,
        help="comma-separated event types among scene,segment,status (default: the daemon's default, scene,status); "
        "hello and error always come",
    )
    parser.add_argument("--timeout", type=float, default=None, help="fail if no event arrives for this many seconds")
    parser.add_argument(
        "--socket-path", action="store_true",
        help="print the Unix socket this command would connect to and exit (for socat: the same rule as root or not)",
    )


def socket_path() -> str:
    """The first existing socket among the places a daemon listens, else where a daemon of this user would."""
    from edge_asc.protocol.addresses import default_socket_path, socket_path_candidates

    found = [p for p in socket_path_candidates() if p.exists()]
    return str(found[0] if found else default_socket_path())


def run(args: argparse.Namespace) -> int:
    from edge_asc.protocol.client import Client, DaemonNotRunning
    from edge_asc.protocol.records import ProtocolError

    if args.socket_path:
        print(args.socket or socket_path())
        return 0

    uri = f"tcp://{args.tcp}" if args.tcp else args.socket
    client = Client(uri, timeout=args.timeout)
    try:
        client.connect()
        if args.events is not None:
            client.subscribe(args.events)
        _print(client.hello.to_line())
        for event in client:
            _print(event.to_line())
    except KeyboardInterrupt:
        return 0
    except _StdoutClosed:  # the reader of stdout went away (| head -n 3): a normal end
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except DaemonNotRunning as exc:
        log.error("%s", exc)
        return 1
    except TimeoutError:
        log.error("no event from the daemon for %s s", args.timeout)
        return 1
    except ProtocolError as exc:
        log.error("the daemon sent something this version does not understand: %s", exc)
        return 1
    except ConnectionError as exc:
        log.error("connection to the daemon lost: %s", exc)
        return 1
    finally:
        client.close()
    return 0


class _StdoutClosed(Exception):
    """Nobody reads our stdout any more."""


def _print(line: bytes) -> None:
    try:
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise _StdoutClosed from None
