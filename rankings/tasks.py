"""Periodic rank-history work under Celery beat; thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from core.task_policy import RETRY_TRANSIENT, time_limits
from rankings import services


@shared_task(acks_late=True, **RETRY_TRANSIENT, **time_limits(120))
def snapshot_take() -> int:
    return services.snapshot_take()
