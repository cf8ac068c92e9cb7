"""A real HTTP server on the loopback interface, in a thread, for the scripts' HTTP clients."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LoopbackServer:
    """Answers like the API endpoints the scripts call: a POST of events gets 202 with the
    count accepted, any GET 200. It serves one request at a time, as a single worker would,
    so a stalled request holds up every request behind it, on any connection."""

    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    # Close each connection after its answer without saying so, as a server whose
    # keep-alive timeout has passed does: the client finds out on its next request.
    drop_after_answer: bool = False
    # The next this many POSTs answer 503 with Retry-After, as the API does while Kafka is down.
    unavailable: int = 0
    _stall_at: float | None = None
    _stall_s: float = 0.0
    _serve: threading.Lock = field(default_factory=threading.Lock)

    def stall_once(self, *, after: float, seconds: float) -> None:
        """Hold the first request that arrives ``after`` seconds from now for ``seconds``."""
        self._stall_at, self._stall_s = time.monotonic() + after, seconds

    def handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, Any]:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._serve:
            if self._stall_at is not None and time.monotonic() >= self._stall_at:
                self._stall_at = None
                time.sleep(self._stall_s)
            self.requests.append(Seen(handler.command, handler.path, dict(handler.headers.items()), body))
            if handler.command == "POST" and self.unavailable > 0:
                self.unavailable -= 1
                return 503, {"error": {"code": "kafka_unavailable", "message": "Retry later.", "details": {}}}
            if handler.command == "POST":
                return 202, {"accepted": len(json.loads(body).get("events", [None]))}
            return 200, {"ok": True}


@contextmanager
def loopback_serve() -> Iterator[LoopbackServer]:
    server = LoopbackServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like gunicorn
        disable_nagle_algorithm = True  # the headers and the body are two writes: no 40 ms delayed-ACK wait

        def setup(self) -> None:
            super().setup()
            server.connections += 1

        def answer(self) -> None:
            status, payload = server.handle(self)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = server.drop_after_answer

        do_GET = do_POST = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
