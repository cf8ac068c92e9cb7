"""Periodic ranking maintenance under Celery beat; thin wrappers over services."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError
from redis.exceptions import RedisError

from rankings import services


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=5)
def rankings_rollover() -> int:
    return services.window_rollover()


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=5)
def rankings_rebase() -> bool:
    return services.trending_rebase()


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=3)
def rankings_snapshot() -> int:
    return services.snapshot_take()


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=5)
def rankings_rebuild() -> dict[str, object]:
    return services.rankings_rebuild().__dict__


@shared_task(acks_late=True)
def rankings_watchdog() -> bool:
    """Rebuild when Redis lost the rankings (restart without data, flush)."""
    try:
        return services.rankings_ensure_built()
    except RedisError:
        return False
