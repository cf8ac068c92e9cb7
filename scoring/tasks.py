"""Thin Celery tasks: ids in, a service call inside. Services are idempotent,
which is what makes acks_late and retries safe."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.db import DatabaseError, InterfaceError
from redis.exceptions import RedisError

from core import metrics
from scoring import ledger, partitions, rebuild

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=None,
)
def batch_process(batch_id: str) -> dict[str, object]:
    started = time.perf_counter()
    try:
        outcome = ledger.batch_process(batch_id=batch_id)
    except RedisError:
        # Counted in Postgres already; the repair task applies the deltas when Redis is back.
        logger.warning("Redis unavailable after counting batch %s; repair will apply it", batch_id)
        return {"batch_id": batch_id, "applied": False}
    if not outcome.already_processed:
        elapsed = time.perf_counter() - started
        metrics.batch_observed(outcome.received, elapsed)
        # One structured line per batch, its outcome as JSON fields (see core.logging).
        logger.info("batch %s processed", batch_id, extra={**outcome.__dict__, "duration_ms": round(elapsed * 1000, 2)})
    return outcome.__dict__


@shared_task(acks_late=True, autoretry_for=(DatabaseError,), retry_backoff=1, max_retries=3)
def batches_repair() -> dict[str, int]:
    try:
        outcome = ledger.batches_repair()
    except RedisError:
        logger.warning("Redis unavailable; batch repair postponed")
        return {"requeued": 0, "applied": 0}
    for batch_id in outcome.requeued:
        batch_process.delay(batch_id)
    return {"requeued": len(outcome.requeued), "applied": outcome.applied}


@shared_task(acks_late=True)
def partitions_maintain() -> dict[str, list[str]]:
    """Create the coming days' partitions of the dedupe keys and the ledger; drop expired ones."""
    return partitions.partitions_maintain().__dict__


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=5)
def window_rollover() -> int:
    return ledger.window_rollover()


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=5)
def trending_rebase() -> bool:
    return ledger.trending_rebase()


@shared_task(acks_late=True, autoretry_for=(DatabaseError, RedisError), retry_backoff=2, max_retries=5)
def rankings_rebuild() -> dict[str, object]:
    return rebuild.rankings_rebuild().__dict__


@shared_task(acks_late=True)
def rankings_watchdog() -> bool:
    """Rebuild when Redis lost the rankings (restart without data, flush)."""
    try:
        return rebuild.rankings_ensure_built()
    except RedisError:
        return False
