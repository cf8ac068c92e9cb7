"""Periodic rank-history work under Celery beat; thin wrappers over services."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError
from redis.exceptions import RedisError

from rankings import services


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=3)
def snapshot_take() -> int:
    return services.snapshot_take()
