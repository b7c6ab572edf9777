"""What the event server allows one client and all of them: a request rate per client, a number of
clients, one log line per burst of trouble, and the shared token of TCP clients.

A local client flooding ``ping`` or ``set`` must not delay anyone else's events: each connection has a
token bucket (``RequestBudget``); a request over it is not parsed, it is counted and answered with one
``rate_limited`` error per refill period (with the count), and the server stops reading that client's
socket until the bucket refills, so the flood waits in the client's own socket buffer, not in the
daemon. ``BurstLog`` turns a storm of identical failures (accept() without file descriptors) into one
line when it starts and one summary when it ends.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import stat
import time
from pathlib import Path

from edge_asc.protocol.messages import BUSY, RATE_LIMITED, UNAUTHORIZED, Auth, Error, Ping, Pong, Request, Subscribe, preview

log = logging.getLogger(__name__)

MAX_CLIENTS = 64  # connected clients; more are told ``busy`` and closed (each costs a descriptor and a queue)
REQUEST_RATE = 20.0  # requests per second one client may sustain (a person or a script needs a few)
BURST_QUIET_S = 10.0  # a burst of the same trouble ends after this long without it
MAX_TOKEN_BYTES = 4096  # a token file is one line
THROTTLE_S = 0.25  # a client over its rate is not read for at least this long (its flood is counted by newlines)


class TokenError(ValueError):
    """A token file that cannot be used; the message names the file."""


class RequestBudget:
    """A token bucket: ``take()`` is True while the client is within ``rate`` requests a second (bursts of
    twice that, at least one)."""

    def __init__(self, rate: float = REQUEST_RATE) -> None:
        self.rate = rate
        self.burst = max(1, int(2 * rate))
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()
        self.refused = 0  # requests refused since the last report to the client
        self.refused_total = 0

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.refused += 1
        self.refused_total += 1
        return False

    def exhausted(self, now: float | None = None) -> bool:
        """No request is allowed now (the bucket refilled to this moment holds less than one)."""
        now = time.monotonic() if now is None else now
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate) < 1.0

    def refuse(self, count: int) -> None:
        """Count ``count`` requests refused without looking at them."""
        self.refused += count
        self.refused_total += count

    def wait_s(self) -> float:
        """How long until one request is allowed again."""
        return max(0.0, (1.0 - self.tokens) / self.rate)


class BurstLog:
    """Log the first of a run of the same trouble, then nothing until BURST_QUIET_S passes without it,
    then one line with the count."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.count = 0
        self.last = float("-inf")

    def hit(self, detail: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self.last > BURST_QUIET_S:
            if self.count > 1:
                self.log.warning("%s: %d times in the last burst", self.what, self.count)
            self.count = 0
            self.log.warning("%s: %s (further ones are counted, not logged, until %.0f s pass without one)", self.what, detail, BURST_QUIET_S)
        self.count += 1
        self.last = now


def read_token_file(path: str | Path) -> str:
    """The shared TCP token: the first line of ``path``, at least 16 characters, in a file that other
    users cannot read (it would not be a secret) and no one else can write."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise TokenError(f"cannot read the TCP token file {path}: {exc.strerror or exc}") from None
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        raise TokenError(f"{path}: the TCP token file may be read or written by other users (mode {stat.S_IMODE(st.st_mode):04o}; chmod o-rw it)")
    if len(data) > MAX_TOKEN_BYTES:
        raise TokenError(f"{path}: the TCP token file is longer than {MAX_TOKEN_BYTES} bytes")
    try:
        lines = data.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise TokenError(f"{path}: the TCP token file is not UTF-8 text") from None
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise TokenError(f"{path}: the TCP token must be at least 16 characters (e.g. openssl rand -hex 32 > {path})")
    return token


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (no timing hint about how much of a guess was right)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


class Gatekeeper:
    """The event server's limits in one place (the server calls it from its loop thread): how many
    clients per transport, each client's request budget, who may change settings over TCP, and the
    burst logs. ``rate_limited`` counts every refused request since start."""

    def __init__(self, max_clients: int = MAX_CLIENTS, request_rate: float = REQUEST_RATE,
                 tcp_read_only: bool = False, tcp_token: str | None = None) -> None:
        self.max_clients = max_clients
        self.request_rate = request_rate
        self.tcp_read_only = tcp_read_only or tcp_token is not None  # TCP clients may change settings only with the token
        self.tcp_token = tcp_token
        self.rate_limited = 0
        self._accept_log = BurstLog(log, "cannot accept a connection")
        self._busy_log = BurstLog(log, f"refusing clients beyond server.max_clients ({max_clients})")
        self._flood_log = BurstLog(log, "a client goes over its request rate; its excess requests are refused")

    def refusal(self, peer: str, peers: list[str]) -> Error | None:
        """``busy`` when ``peer``'s transport already has max_clients of the connected ``peers``; counted
        per transport, so a TCP crowd never locks out the permissioned Unix socket."""
        unix = peer == "unix"
        if sum((p == "unix") == unix for p in peers) < self.max_clients:
            return None
        self._busy_log.hit(f"{peer} told busy")
        where = "Unix-socket" if unix else "TCP"
        return Error(BUSY, f"the daemon serves its maximum of {self.max_clients} {where} clients (server.max_clients); try again later")

    def admit(self, conn) -> None:
        """A new connection's budget and trust: the Unix socket's permissions decide who connects there."""
        conn.budget = RequestBudget(self.request_rate)
        conn.trusted = conn.peer == "unix" or not self.tcp_read_only

    def count_flood(self, budget: RequestBudget, buf: bytearray) -> None:
        """With the budget spent, the complete lines in ``buf`` are counted as refused and removed in one
        step (C speed), never split and parsed one by one."""
        last = buf.rfind(b"\n")
        if last >= 0 and budget.exhausted():
            refused = buf.count(b"\n", 0, last + 1)
            budget.refuse(refused)
            self.rate_limited += refused
            del buf[: last + 1]

    def take(self, budget: RequestBudget) -> bool:
        """One request within the budget (False: refused and counted)."""
        if budget.take():
            return True
        self.rate_limited += 1
        return False

    async def throttle(self, conn, enqueue) -> None:
        """A client over its rate: one ``rate_limited`` error with the count, then its socket is not read
        for at least THROTTLE_S (its flood waits in its own socket buffer, not in the daemon)."""
        refused, conn.budget.refused = conn.budget.refused, 0
        self._flood_log.hit(f"{conn.name}: {refused} requests refused")
        message = f"{refused} requests were not handled: more than {self.request_rate:g} requests a second"
        enqueue(conn, Error(RATE_LIMITED, message, count=refused).to_line())
        await asyncio.sleep(max(conn.budget.wait_s(), THROTTLE_S))

    def needs_authority(self, conn, request: Request) -> bool:
        """Whether the request is an ``auth``, or a change the (untrusted TCP) client may not ask for."""
        return isinstance(request, Auth) or not (conn.trusted or isinstance(request, (Subscribe, Ping)))

    def authorize(self, conn, request: Request, line: bytes):
        """The answer to an ``auth`` or to a refused change: ``pong`` for the right token (the client is
        trusted from now on), else ``unauthorized``; returns (event, refused)."""
        if isinstance(request, Auth) and self.tcp_token is not None and token_matches(request.token, self.tcp_token):
            conn.trusted = True
            return Pong(), False
        if isinstance(request, Auth):
            why = "wrong token" if self.tcp_token else "this daemon accepts no token on TCP (server.tcp_token_file is not set)"
            return Error(UNAUTHORIZED, why), True
        why = (f"{request.type} needs the TCP token: send {{\"type\":\"auth\",\"token\":...}} first "
               "(server.tcp_token_file), or use the Unix socket")
        return Error(UNAUTHORIZED, why, request=preview(line)), True

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """accept() failures (no descriptors left: EMFILE) come once per failed accept, thousands a
        second: one line per burst, no traceback. After such a failure asyncio retries serving the socket a
        second later; when the server closed the socket meanwhile (stop), that retry fails on the closed
        descriptor: nothing to report. Everything else goes to asyncio's default handler."""
        exc = context.get("exception")
        if str(context.get("message", "")).startswith("socket.accept()"):
            self._accept_log.hit(getattr(exc, "strerror", None) or str(exc))
            return
        if isinstance(exc, ValueError) and "_start_serving" in repr(context.get("handle")):
            log.debug("a retry of accept() on a socket closed since: %s", exc)
            return
        loop.default_exception_handler(context)
