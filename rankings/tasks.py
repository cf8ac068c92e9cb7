"""Periodic rank-history work and webhook deliveries under Celery; thin wrappers over services."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import DatabaseError

from core.redis import REDIS_UNAVAILABLE
from core.task_policy import RETRY_TRANSIENT, TRANSIENT_ERRORS, time_limits
from rankings import services

logger = logging.getLogger(__name__)

# A delivery's attempts are bounded in time by the service (WEBHOOKS_RETRY_FOR_S, 13 to 20
# attempts at the defaults); this only stops a runaway if that bound were misconfigured.
DELIVERY_MAX_RETRIES = 100


@shared_task(acks_late=True, **RETRY_TRANSIENT, **time_limits(120))
def snapshot_take() -> int:
    return services.snapshot_take()


@shared_task(acks_late=True, **time_limits(10))
def webhooks_evaluate() -> int:
    # Not retried: beat sends the next one within a second, which reads the lists afresh.
    try:
        delivery_ids = services.webhooks_evaluate()
    except (DatabaseError, *REDIS_UNAVAILABLE) as exc:
        logger.warning("webhook evaluation skipped: %s", exc)
        return 0
    for delivery_id in delivery_ids:
        webhook_deliver.delay(delivery_id)
    return len(delivery_ids)


@shared_task(
    bind=True,
    acks_late=True,
    # A lost connection to Postgres: the same attempt again soon (nothing was recorded).
    **{**RETRY_TRANSIENT, "max_retries": DELIVERY_MAX_RETRIES},
    # One POST is bounded by WEBHOOKS_TIMEOUT_S per connect and read; these catch a stuck worker.
    **time_limits(60),
)
def webhook_deliver(self: Task, delivery_id: int) -> str:
    outcome = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        # The receiver failed: the service chose the wait (exponential, jittered, bounded in time).
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(acks_late=True, **time_limits(30))
def webhook_deliveries_requeue() -> int:
    try:
        delivery_ids = services.webhook_deliveries_lost()
    except TRANSIENT_ERRORS as exc:
        logger.warning("webhook requeue skipped: %s", exc)
        return 0
    for delivery_id in delivery_ids:
        webhook_deliver.delay(delivery_id)
    return len(delivery_ids)
