"""Liveness and readiness probes."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_postgres() -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")


def _check_redis() -> None:
    from rankings.redis_keys import redis_client

    redis_client().ping()


def _check_kafka() -> None:
    from events.kafka import kafka_ping

    kafka_ping()


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"postgres": _check_postgres, "redis": _check_redis, "kafka": _check_kafka}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            results[name] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    ready = all(v == "ok" for v in results.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
