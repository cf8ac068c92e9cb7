"""Thin Celery tasks: ids in, a service call inside. Services are idempotent,
which is what makes acks_late and retries safe."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.db import DatabaseError, InterfaceError
from redis.exceptions import RedisError

from events import services
from ranking_site import metrics

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=None,
)
def events_batch_process(batch_id: str) -> dict[str, object]:
    started = time.perf_counter()
    try:
        outcome = services.batch_process(batch_id=batch_id)
    except RedisError:
        # Counted in Postgres already; the repair task applies the deltas when Redis is back.
        logger.warning("Redis unavailable after counting batch %s; repair will apply it", batch_id)
        return {"batch_id": batch_id, "applied": False}
    if not outcome.already_processed:
        elapsed = time.perf_counter() - started
        metrics.batch_observed(outcome.received, elapsed)
        # One structured line per batch, its outcome as JSON fields (see ranking_site.logging).
        logger.info("batch %s processed", batch_id, extra={**outcome.__dict__, "duration_ms": round(elapsed * 1000, 2)})
    return outcome.__dict__


@shared_task(acks_late=True, autoretry_for=(DatabaseError,), retry_backoff=1, max_retries=3)
def events_batches_repair() -> dict[str, int]:
    try:
        outcome = services.batches_repair()
    except RedisError:
        logger.warning("Redis unavailable; batch repair postponed")
        return {"requeued": 0, "applied": 0}
    for batch_id in outcome.requeued:
        events_batch_process.delay(batch_id)
    return {"requeued": len(outcome.requeued), "applied": outcome.applied}


@shared_task(acks_late=True)
def events_seen_prune() -> int:
    return services.seen_events_prune()
