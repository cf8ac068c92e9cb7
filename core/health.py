"""Operational endpoints: liveness (/healthz), readiness (/readyz), metrics (/metrics).

They are DRF views only so that the OpenAPI schema documents them; none needs
credentials (except /metrics when METRICS_TOKEN is set), and none lets the
client's Accept header turn a probe into a 406.
"""

from __future__ import annotations

import hmac
import logging
import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import metrics
from core.api.errors import ErrorOutputSerializer, error_body

logger = logging.getLogger(__name__)

TAGS = ["operations"]
CHECK_TIMEOUT_S = 3.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_TOKEN_MISSING = "Send 'Authorization: Bearer <METRICS_TOKEN>'."


class FirstRendererNegotiation(BaseContentNegotiation):
    """Always the view's first renderer: a probe or a scraper must get an answer whatever it accepts."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class PrometheusRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data if isinstance(data, bytes) else str(data).encode()


class _OperationalApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation


# --- liveness ------------------------------------------------------------------------


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


class HealthzApi(_OperationalApi):
    @extend_schema(
        operation_id="healthz",
        summary="Liveness",
        description="200 whenever the process answers. Touches no backing service, so a restart is never "
        "triggered by Postgres, Redis or Kafka being down (that is what /readyz reports).",
        responses={200: HealthOutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


# --- readiness -----------------------------------------------------------------------


def _check_postgres() -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")


def _check_redis() -> dict[str, Any]:
    """The projection's store answers: every master of a cluster, or the one node."""
    from core.redis import cluster_masters, is_cluster, redis_client

    client = redis_client()
    if is_cluster():
        client.ping(target_nodes=client.PRIMARIES)
        info = client.cluster_info()
        if info.get("cluster_state") != "ok":
            raise ConnectionError(f"cluster_state is {info.get('cluster_state')}")
        return {"mode": "cluster", "masters": cluster_masters()}
    client.ping()
    return {"mode": "single", "masters": 1}


def _broker_reachable(servers: Iterable[str], timeout_s: float) -> None:
    """A TCP connection to any bootstrap server, or the last error."""
    error: OSError = ConnectionError("no bootstrap servers configured")
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            return
        except (OSError, ValueError) as exc:
            error = exc if isinstance(exc, OSError) else ConnectionError(f"bad address {server!r}")
    raise error


def _check_kafka() -> None:
    from kafka import KafkaAdminClient

    timeout_ms = int(CHECK_TIMEOUT_S * 1000 * 2 / 3)
    # kafka-python starts the admin client's IO thread before bootstrapping and does not
    # stop it when bootstrapping fails; checking the port first keeps a dead broker from
    # leaking a thread per probe.
    _broker_reachable(settings.KAFKA_BOOTSTRAP_SERVERS, timeout_ms / 1000)
    # Then a metadata round trip, which proves a broker answers the protocol. A client of
    # its own: the per-process producer's state must not depend on probes.
    admin = KafkaAdminClient(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id="readyz",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        admin.list_topics()
    finally:
        admin.close()


CHECKS: dict[str, Callable[[], dict[str, Any] | None]] = {
    "postgres": _check_postgres,
    "redis": _check_redis,
    "kafka": _check_kafka,
}
# Postgres runs on the request's own thread: Django connections belong to a thread, and a
# connection opened in a pool thread would outlive the probe.
_IN_REQUEST_THREAD = {"postgres"}


def _timed(name: str, check: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        details = check() or {}
    except Exception as exc:  # any failure means not ready; the log has the detail
        logger.warning("readiness check %s failed", name, exc_info=True)
        # Only the exception's class goes out: the message may name internal hosts and ports.
        return {"status": "error", "error": exc.__class__.__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2), **details}


def readiness() -> dict[str, dict[str, Any]]:
    """Each dependency's status. The slow checks run side by side, so a dead broker costs one timeout."""
    results: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz") as pool:
        futures = {
            name: pool.submit(_timed, name, check) for name, check in CHECKS.items() if name not in _IN_REQUEST_THREAD
        }
        for name in _IN_REQUEST_THREAD:
            results[name] = _timed(name, CHECKS[name])
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=CHECK_TIMEOUT_S)
            except TimeoutError:
                results[name] = {"status": "error", "error": "Timeout"}
    return {name: results[name] for name in CHECKS}


class CheckOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "error"])
    latency_ms = serializers.FloatField(required=False, help_text="Time the check took; present when ok.")
    error = serializers.CharField(required=False, help_text="Exception class of the failure; the log has the detail.")
    mode = serializers.ChoiceField(
        choices=["single", "cluster"], required=False, help_text="Redis only: one node or a Redis Cluster."
    )
    masters = serializers.IntegerField(required=False, help_text="Redis only: masters serving the rankings.")


class ChecksOutputSerializer(serializers.Serializer):
    postgres = CheckOutputSerializer()
    redis = CheckOutputSerializer()
    kafka = CheckOutputSerializer()


class ReadinessOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    checks = ChecksOutputSerializer()


_CHECKS_OK: dict[str, dict[str, Any]] = {
    "postgres": {"status": "ok", "latency_ms": 0.4},
    "redis": {"status": "ok", "latency_ms": 0.4, "mode": "cluster", "masters": 3},
    "kafka": {"status": "ok", "latency_ms": 6.1},
}
_READY = {"status": "ok", "checks": _CHECKS_OK}
_NOT_READY = {
    "status": "unavailable",
    "checks": {**_CHECKS_OK, "kafka": {"status": "error", "error": "NoBrokersAvailable"}},
}


class ReadyzApi(_OperationalApi):
    @extend_schema(
        operation_id="readyz",
        summary="Readiness",
        description="Whether Postgres, Redis and Kafka answer, each with its own status. 503 when any is down: "
        "take the instance out of the load balancer until it recovers (do not restart it).",
        responses={
            200: OpenApiResponse(
                ReadinessOutputSerializer,
                description="Every dependency answers.",
                examples=[OpenApiExample("Ready", value=_READY, status_codes=["200"], response_only=True)],
            ),
            503: OpenApiResponse(
                ReadinessOutputSerializer,
                description="At least one dependency is down; `checks` says which.",
                examples=[OpenApiExample("Kafka down", value=_NOT_READY, status_codes=["503"], response_only=True)],
            ),
        },
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        checks = readiness()
        ready = all(check["status"] == "ok" for check in checks.values())
        return Response({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


# --- metrics ---------------------------------------------------------------------------


class MetricsApi(_OperationalApi):
    renderer_classes = [PrometheusRenderer]

    @extend_schema(
        operation_id="metrics",
        summary="Prometheus metrics",
        description="Prometheus text exposition format: events accepted and rejected by reason, produce latency, "
        "bridge lag per partition, batch size and task duration, ranking read latency, dead letters. "
        "The figures are shared by every process (kept in Redis), so any web instance gives the same answer. "
        "When METRICS_TOKEN is set the scraper must send `Authorization: Bearer <token>`.",
        responses={
            (200, "text/plain"): OpenApiResponse(
                str,
                description="Metrics in the Prometheus text format (version 0.0.4).",
                examples=[
                    OpenApiExample(
                        "Metrics",
                        value="# HELP ranking_events_accepted_total Events produced to Kafka and answered with "
                        "202.\n# TYPE ranking_events_accepted_total counter\nranking_events_accepted_total 1520.0\n",
                        status_codes=["200"],
                        response_only=True,
                    )
                ],
            ),
            (401, "application/json"): OpenApiResponse(
                ErrorOutputSerializer,
                description="METRICS_TOKEN is set and the request did not carry it.",
                examples=[
                    OpenApiExample(
                        "Missing token",
                        value=error_body("not_authenticated", METRICS_TOKEN_MISSING),
                        status_codes=["401"],
                        response_only=True,
                    )
                ],
            ),
        },
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        token = getattr(settings, "METRICS_TOKEN", "")
        if token:
            sent = request.META.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                # The error is JSON like every other error, not the negotiated text format.
                request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
                body = error_body("not_authenticated", METRICS_TOKEN_MISSING)
                return Response(body, status=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(metrics.metrics_render(), content_type=PROMETHEUS_CONTENT_TYPE)


# The names ranking_site.urls routes to.
healthz = HealthzApi.as_view()
readyz = ReadyzApi.as_view()
metrics_view = MetricsApi.as_view()
