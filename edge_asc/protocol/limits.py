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

import hmac
import logging
import os
import stat
import time
from pathlib import Path

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
