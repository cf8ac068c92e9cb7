"""Per-request context: request id, access log line, request metrics.

Listed first in MIDDLEWARE so that the id is set before anything else logs
and the timing covers the whole request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from core import metrics
from core.logging import request_id_var

logger = logging.getLogger("ranking_site.request")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# A caller's id ends up in logs and Kafka messages, so only a plain token is taken
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
INGEST_ROUTE = "events-ingest"
RANKING_ROUTE_PREFIX = "rankings-"
# Probes and scrapes arrive every few seconds; at INFO they would drown the requests that matter.
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")


def request_id_from(request: HttpRequest) -> str:
    incoming = request.META.get(REQUEST_ID_META, "")
    return incoming if _REQUEST_ID.match(incoming) else str(uuid.uuid4())


def _events_in(response: HttpResponseBase) -> int:
    """Events in the request body when DRF parsed it; 1 when it was refused before that."""
    context = getattr(response, "renderer_context", None) or {}
    data = getattr(context.get("request"), "_full_data", None)
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        return max(len(data["events"]), 1)
    return 1


def _ingest_observed(response: HttpResponseBase) -> None:
    data: Any = getattr(response, "data", None)
    if response.status_code == 202 and isinstance(data, dict):
        metrics.events_accepted(int(data.get("accepted", 0)))
        return
    error = data.get("error") if isinstance(data, dict) else None
    reason = str(error.get("code")) if isinstance(error, dict) else f"http_{response.status_code}"
    metrics.events_rejected(reason, _events_in(response))


class RequestContextMiddleware:
    """Takes the caller's X-Request-ID (or makes one), logs and measures the request.

    The id is written back into ``request.META`` so every layer below (the
    ingest view puts it into each Kafka message) reads the same value, and it
    is returned in the response's X-Request-ID header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request)
        request.META[REQUEST_ID_META] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            response[REQUEST_ID_HEADER] = request_id
            self._observe(request, response, elapsed)
            return response
        finally:
            request_id_var.reset(token)

    def _observe(self, request: HttpRequest, response: HttpResponseBase, elapsed: float) -> None:
        match = request.resolver_match
        route = match.url_name if match is not None else None
        if route == INGEST_ROUTE and request.method == "POST":
            _ingest_observed(response)
        elif route is not None and route.startswith(RANKING_ROUTE_PREFIX) and request.method == "GET":
            metrics.ranking_read_observed(endpoint=route, seconds=elapsed)

        status = response.status_code
        quiet = request.path.startswith(self.static_prefix) or request.path in QUIET_PATHS
        level = logging.WARNING if status >= 500 else logging.DEBUG if quiet else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "%s %s %s %.1fms",
                request.method,
                request.path,
                status,
                elapsed * 1000,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
