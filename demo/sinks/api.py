"""The ``api`` sink: the history POSTed to /api/v1/events/ in batches, like client apps, API key
included; the whole pipeline counts it."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

from core.progress import Progress
from demo.catalogue import Catalog
from demo.history import EventKind, History, event_wire
from demo.plan import SeedError
from events.ingest import api_key_create, api_key_revoke


class _ApiClient:
    """POSTs event batches over one keep-alive connection; retries what the server asks to retry."""

    RETRIES = 8

    def __init__(self, *, url: str, api_key: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SeedError(f"--url must be an http:// URL, not {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {api_key}"}
        self.conn: http.client.HTTPConnection | None = None

    def post(self, events: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": events}).encode()
        for attempt in range(self.RETRIES):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request("POST", self.path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == self.RETRIES - 1:
                    raise SeedError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
                time.sleep(min(0.5 * 2**attempt, 10.0))
                continue
            if response.status in (200, 201, 202):
                return
            if response.status in (429, 502, 503, 504) and attempt < self.RETRIES - 1:
                # Same event ids on retry: the pipeline counts them once.
                wait = response.getheader("Retry-After")
                time.sleep(float(wait) if wait and wait.replace(".", "", 1).isdigit() else min(0.5 * 2**attempt, 10.0))
                continue
            raise SeedError(f"API answered {response.status}: {text[:500].decode(errors='replace')}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def events_post_api(
    *,
    stream: History,
    catalog: Catalog,
    user_ids: list[int],
    kinds: list[EventKind],
    total: int,
    url: str,
    api_key: str | None,
    batch: int,
    progress: Progress,
) -> int:
    """POST the stream in batches of ``batch``; without ``api_key``, with a key made for this run
    and revoked at the end."""
    made = None
    if api_key is None:
        made, api_key = api_key_create(name="seed")
    try:
        return _post_all(
            stream=stream, catalog=catalog, user_ids=user_ids, kinds=kinds, total=total,
            client=_ApiClient(url=url, api_key=api_key), batch=batch, progress=progress,
        )  # fmt: skip
    finally:
        if made is not None:
            api_key_revoke(name_or_prefix=made.prefix)


def _post_all(
    *,
    stream: History,
    catalog: Catalog,
    user_ids: list[int],
    kinds: list[EventKind],
    total: int,
    client: _ApiClient,
    batch: int,
    progress: Progress,
) -> int:
    pending: list[dict[str, Any]] = []
    sent = 0
    progress("events", 0, total)
    try:
        for _, events in stream:
            for event in events:
                pending.append(json.loads(event_wire(event, catalog=catalog, user_ids=user_ids, kinds=kinds).to_json()))
                if len(pending) >= batch:
                    client.post(pending)
                    sent += len(pending)
                    pending = []
                    progress("events", sent, total)
        if pending:
            client.post(pending)
            sent += len(pending)
    finally:
        client.close()
    progress("events", sent, total)
    return sent
