"""Thin Celery tasks: ids in, a service call inside. Services are idempotent,
which is what makes acks_late and retries safe.

Only transient errors are retried (core.task_policy), a bounded number of times with
jittered backoff. A batch task that gives up records why (BatchTask.on_failure):
the batch stays in the ledger, counted in ``ranking_batches_failed_total``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from core import metrics
from core.redis import REDIS_UNAVAILABLE
from core.task_policy import RETRY_TRANSIENT, error_transient, time_limits
from scoring import ledger, partitions, rebuild

logger = logging.getLogger(__name__)


class BatchTask(Task):
    """A batch task that gives up says so: a metric, and the error kept with the batch."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        batch_id = str(args[0] if args else kwargs["batch_id"])
        if isinstance(exc, SoftTimeLimitExceeded):
            reason = "time_limit"
        elif error_transient(exc):
            reason = "retries_exhausted"
        else:
            reason = "error"
        metrics.batch_failed(reason=reason)
        try:
            failed = ledger.batch_failure_record(
                batch_id=batch_id, error=f"{type(exc).__name__}: {exc}", permanent=reason == "error"
            )
        except DatabaseError:  # Postgres is what failed: the batch is untouched and the sweeper re-queues it
            failed = False
        logger.error(
            "batch %s failed (%s); %s",
            batch_id,
            reason,
            "it waits for an operator" if failed else "the sweeper will queue it again",
            extra={"batch_id": batch_id, "reason": reason, "error": f"{type(exc).__name__}: {exc}"},
        )


# A batch of 10,000 events (the bridge's largest) takes about a second.
@shared_task(base=BatchTask, acks_late=True, **RETRY_TRANSIENT, **time_limits(30))
def batch_process(batch_id: str) -> dict[str, object]:
    started = time.perf_counter()
    outcome = ledger.batch_process(batch_id=batch_id)
    if not outcome.already_processed:
        elapsed = time.perf_counter() - started
        metrics.batch_observed(outcome.received, elapsed)
        # One structured line per batch, its outcome as JSON fields (see core.logging).
        logger.info("batch %s processed", batch_id, extra={**outcome.__dict__, "duration_ms": round(elapsed * 1000, 2)})
    return outcome.__dict__


def batch_tasks_waiting() -> int | None:
    """Batch tasks waiting in the broker's queue, or None when the broker does not answer."""
    app = batch_process.app
    try:
        with app.connection_for_read() as conn:
            declared = conn.default_channel.queue_declare(queue=app.conf.task_default_queue, passive=True)
            return int(declared.message_count)
    except ChannelError:  # the Redis transport deletes an empty queue: nothing waits
        return 0
    except (KombuOperationalError, RedisError, OSError):
        logger.warning("broker unavailable; lost batches are not re-queued this time")
        return None


# No retries: beat runs it again in a few seconds.
@shared_task(acks_late=True, **time_limits(20))
def batches_repair() -> dict[str, int]:
    waiting = batch_tasks_waiting()
    try:
        outcome = ledger.batches_repair(requeue=waiting == 0)
    except REDIS_UNAVAILABLE:
        logger.warning("Redis unavailable; batch repair postponed")
        return {"requeued": 0, "applied": 0}
    for batch_id in outcome.requeued:
        batch_process.delay(batch_id)
    return {"requeued": len(outcome.requeued), "applied": outcome.applied, "waiting": waiting or 0}


# The periodic tasks below take seconds at a million videos.
@shared_task(acks_late=True, **RETRY_TRANSIENT, **time_limits(300))
def partitions_maintain() -> dict[str, list[str]]:
    """Create the coming days' partitions of the dedupe keys and the ledger; drop expired ones."""
    return partitions.partitions_maintain().__dict__


@shared_task(acks_late=True, **RETRY_TRANSIENT, **time_limits(300))
def window_rollover() -> int:
    return ledger.window_rollover()


@shared_task(acks_late=True, **RETRY_TRANSIENT, **time_limits(600))
def counters_fold() -> int:
    return ledger.counters_fold()


@shared_task(acks_late=True, **RETRY_TRANSIENT, **time_limits(300))
def trending_rebase() -> bool:
    return ledger.trending_rebase()


# About 50 s at a million videos on two cores; RANKING_REBUILD_TIME_LIMIT_S grows with the catalogue.
@shared_task(acks_late=True, **RETRY_TRANSIENT, **time_limits(settings.RANKING_REBUILD_TIME_LIMIT_S))
def rankings_rebuild() -> dict[str, object]:
    return rebuild.rankings_rebuild().__dict__


@shared_task(acks_late=True, **time_limits(settings.RANKING_REBUILD_TIME_LIMIT_S))
def rankings_watchdog() -> bool:
    """Rebuild the scopes Redis lost (a restart without data, a flush, one master of a cluster);
    beat runs it, and so does a batch that found a scope not built."""
    try:
        return rebuild.rankings_ensure_built()
    except REDIS_UNAVAILABLE:
        return False
