"""The HTTP client every script here uses: keep-alive connections to a loopback server,
and the send schedule of a paced load (open loop).

Standard library only: scripts/loadgen.py runs from any Python 3.11 without the
project's dependencies. The scripts import it as a sibling (scripts/ is on sys.path
when one of them runs as a script).

Open loop: a paced load sends request n at ``start + n / rate`` whatever happened to
the earlier ones, and each request's latency runs from that scheduled time, not from
when it was actually sent. A closed loop (send, wait, send the next) stops sending
while the server stalls, so a half-second stall shows in the one request that was
waiting and none of the ones that should have been sent meanwhile; their delay is
never measured and the percentiles look better than what a client would have seen
(coordinated omission). Measuring from the schedule puts the stall in every request
it held back.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

# What a request can fail with below HTTP: refused, reset, timed out, or a malformed answer.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (OSError, http.client.HTTPException)

# A kept-alive connection that the server has meanwhile closed (its keep-alive timeout)
# fails like this on the next request.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def loopback_address(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an ``http://`` URL on the loopback interface; ValueError otherwise.

    The load and fault tools only ever talk to servers on this machine.
    """
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise ValueError(f"only http:// on the loopback interface is allowed, not {url!r}")
    return parts.hostname, parts.port or 80, parts.path or "/"


def api_key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def retry_after(self) -> float | None:
        """Seconds the server asked the client to wait (Retry-After in seconds), if it did."""
        try:
            return max(float(self.headers["retry-after"]), 0.0)
        except (KeyError, ValueError):
            return None


class Client:
    """One keep-alive HTTP/1.1 connection to a loopback server, not shared between threads.

    After a failure the connection is closed and the next request opens a new one. A
    request that finds its kept-alive connection closed by the server is sent once more,
    on a fresh connection: that is what a server's keep-alive timeout does to an idle
    connection, before reading anything from it. Only then, and only once; any other
    failure is the caller's to count.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"only loopback servers, not {host!r}")
        self.host = host
        self.port = port
        self.headers = dict(headers or {})
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)

    @property
    def timeout(self) -> float | None:
        return self._conn.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        """For the next requests, on this connection and the ones opened after it."""
        self._conn.timeout = seconds
        if self._conn.sock is not None:
            self._conn.sock.settimeout(seconds)

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """The answer, whatever its status; raises one of TRANSPORT_ERRORS when there is none."""
        all_headers = {**self.headers, **(headers or {})}
        reused = self._conn.sock is not None
        try:
            return self._exchange(method, path, body, all_headers)
        except _STALE:
            if not reused:
                raise
        return self._exchange(method, path, body, all_headers)

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        try:
            self._conn.request(method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            headers = {name.lower(): value for name, value in response.getheaders()}
            return Response(response.status, response.read(), headers)
        except TRANSPORT_ERRORS:
            self._conn.close()
            raise

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, body: bytes, *, headers: dict[str, str] | None = None) -> Response:
        """POST a body that is JSON already (the load generators build theirs as bytes)."""
        return self.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})

    def post_json(self, path: str, payload: Any, *, headers: dict[str, str] | None = None) -> Response:
        return self.post(path, json.dumps(payload).encode(), headers=headers)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Schedule:
    """Send times for one paced load, shared by its sending threads.

    With a ``rate`` (requests/s) slot n is due at ``start + n / rate`` (open loop; see the
    module's docstring): ``next()`` hands the slots out in order and sleeps until the one
    it hands out is due. A sender that is behind gets a slot that is already due and sends
    at once; the caller measures the latency from the slot it got. Slots keep their times
    however far behind the senders fall, so the offered load stays the asked-for rate and
    nothing that a stall delayed is left out. Without a rate (closed loop: as fast as the
    answers come) every slot is "now", from ``start`` on.

    Slots due before ``end`` are still sent after it for at most ``drain_s`` seconds
    (bounded runs); the ones never handed out are ``unsent``: if there are any, the
    senders could not keep up with the rate and the latencies understate that.
    """

    def __init__(self, rate: float | None, *, end: float, start: float | None = None, drain_s: float = 5.0) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (None: closed loop)")
        self.rate = rate
        self.start = time.monotonic() if start is None else start
        self.end = end
        self.stop_at = end + drain_s
        self._taken = 0
        self._lock = threading.Lock()

    def _slot(self, n: int) -> float:
        assert self.rate is not None
        return self.start + n / self.rate

    def next(self) -> float | None:
        """The send time of the caller's next request, once it is due; None when the run is over."""
        now = time.monotonic()
        if self.rate is None:
            if now < self.start:
                time.sleep(self.start - now)
                now = self.start
            return now if now < self.end else None
        with self._lock:
            slot = self._slot(self._taken)
            if slot >= self.end or now >= self.stop_at:
                return None
            self._taken += 1
        if slot > now:
            time.sleep(slot - now)
        return slot

    @property
    def unsent(self) -> int:
        """Slots due before the end that no sender took (0 for a closed loop)."""
        if self.rate is None:
            return 0
        with self._lock:
            due = math.ceil((self.end - self.start) * self.rate)  # slots 0 .. due-1 are before the end,
            while due > 0 and self._slot(due - 1) >= self.end:  # by the test next() makes, rounding included
                due -= 1
            return max(due - self._taken, 0)
