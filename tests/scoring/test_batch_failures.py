"""A batch task retries only transient errors, a bounded number of times, and a batch it
gives up on stays visible: counted in a metric and kept in the ledger with its error.

The errors are raised by the real Postgres server (the counters_fail fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from redis.exceptions import RedisClusterException

from core import metrics
from core.task_policy import TRANSIENT_ERRORS, error_transient
from leaderboard.keys import scope_for
from scoring import ledger
from scoring.ledger import batch_store, batches_repair, batches_retry
from scoring.models import Batch
from scoring.tasks import batch_process
from tests.api.test_observability import scrape, value
from tests.conftest import counted, wire

pytestmark = pytest.mark.django_db

SERIALIZATION_FAILURE = "40001"  # psycopg2 TransactionRollbackError: Django's OperationalError
INVALID_TEXT = "22P02"  # psycopg2 InvalidTextRepresentation: Django's DataError
# counters_fail (tests/conftest.py) makes the real Postgres raise them.


@pytest.fixture(autouse=True)
def _metrics_from_zero() -> Iterator[None]:
    metrics.metrics_recording_resume()
    metrics.metrics_reset()
    metrics.gauge_sources_cache_clear()
    yield
    metrics.gauge_sources_cache_clear()


def stored(raws: list[str]) -> str:
    return str(batch_store(topic="t", messages=[[0, n, raw] for n, raw in enumerate(raws)]).id)


def test_retry_policy_is_bounded_with_jittered_backoff() -> None:
    assert batch_process.autoretry_for == TRANSIENT_ERRORS
    assert batch_process.max_retries == 5
    assert batch_process.retry_backoff and batch_process.retry_backoff_max <= 60
    assert batch_process.retry_jitter is True


def test_a_transient_error_is_retried_until_it_clears(
    make_video: Callable[..., Any], rankings_ready: None, counters_fail: Any
) -> None:
    video = make_video()
    attempts = counters_fail(video_id=video.id, sqlstate=SERIALIZATION_FAILURE, times=2)
    batch_id = stored([wire(video.id, "like")])
    result = batch_process.apply(args=[batch_id])  # run here; a retry runs again at once
    assert result.successful(), result.traceback
    assert attempts() == 3
    assert counted(video.id)[0] == 1
    assert Batch.objects.get(id=batch_id).failures == 0


def test_a_cluster_no_node_of_which_answers_after_counting_leaves_the_batch_to_the_sweeper(
    make_video: Callable[..., Any], rankings_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py raises RedisClusterException, not a RedisError, while a master restarts: the batch is
    counted and waits for the sweeper, not set aside for an operator."""
    video = make_video()
    batch_id = stored([wire(video.id, "like")])

    def unreachable(**kwargs: Any) -> int:
        raise RedisClusterException("Redis Cluster cannot be connected. Please provide at least one reachable node")

    with monkeypatch.context() as patched:
        patched.setattr(ledger.store, "deltas_apply", unreachable)
        result = batch_process.apply(args=[batch_id])
    assert result.successful(), result.traceback
    batch = Batch.objects.get(id=batch_id)
    assert batch.processed_at is not None and batch.applied_at is None and batch.failed_at is None
    assert batches_repair(requeue=False, unapplied_after_s=0).applied == 1
    assert Batch.objects.get(id=batch_id).applied_at is not None
    assert error_transient(RedisClusterException("Redis Cluster cannot be connected"))


def test_a_transient_error_that_persists_gives_up_after_the_last_retry_and_leaves_the_batch(
    client: Client, make_video: Callable[..., Any], rankings_ready: None, counters_fail: Any
) -> None:
    video = make_video()
    attempts = counters_fail(video_id=video.id, sqlstate=SERIALIZATION_FAILURE)
    batch_id = stored([wire(video.id, "like")])
    result = batch_process.apply(args=[batch_id])
    assert result.failed()
    assert attempts() == 1 + batch_process.max_retries
    batch = Batch.objects.get(id=batch_id)
    assert batch.processed_at is None and batch.failed_at is None  # the sweeper queues it again later
    assert (batch.failures, batch.error.split(":")[0]) == (1, "OperationalError")
    assert batches_repair(requeue=True, lease_s=0).requeued == [batch_id]
    assert value(scrape(client), "ranking_batches_failed_total", reason="retries_exhausted") == 1


def test_a_deterministic_error_is_not_retried_and_the_batch_waits_for_an_operator(
    client: Client, make_video: Callable[..., Any], rankings_ready: None, counters_fail: Any
) -> None:
    video = make_video()
    attempts = counters_fail(video_id=video.id, sqlstate=INVALID_TEXT)
    batch_id = stored([wire(video.id, "like")])
    assert batch_process.apply(args=[batch_id]).failed()
    assert attempts() == 1
    batch = Batch.objects.get(id=batch_id)
    assert batch.failed_at is not None and batch.error.startswith("DataError: injected failure")
    assert batches_repair(requeue=True, lease_s=0).requeued == []
    assert value(scrape(client), "ranking_batches_failed_total", reason="error") == 1

    # The operator fixed the cause and retries it.
    with connection.cursor() as cur:
        cur.execute("DROP TRIGGER test_counters_fail ON scoring_minutecounter")
    assert batches_retry(batch_ids=[batch_id]) == [batch_id]
    assert batch_process.apply(args=[batch_id]).successful()
    assert counted(video.id)[0] == 1


def test_a_batch_that_keeps_failing_stops_being_requeued(
    make_video: Callable[..., Any], rankings_ready: None, counters_fail: Any, settings: Any
) -> None:
    video = make_video()
    counters_fail(video_id=video.id, sqlstate=SERIALIZATION_FAILURE)
    batch_id = stored([wire(video.id, "like")])
    for _ in range(settings.SCORING_BATCH_MAX_FAILURES):
        assert batches_repair(requeue=True, lease_s=0).requeued == [batch_id]
        assert batch_process.apply(args=[batch_id]).failed()
    batch = Batch.objects.get(id=batch_id)
    assert batch.failures == settings.SCORING_BATCH_MAX_FAILURES and batch.failed_at is not None
    assert batches_repair(requeue=True, lease_s=0).requeued == []


def test_failed_batches_are_listed_in_the_admin_and_retried_from_it(
    client: Client, make_video: Callable[..., Any], rankings_ready: None
) -> None:
    from django.contrib.auth.models import User

    from ranking_site.celery import app as celery_app

    User.objects.create_superuser("operator", "operator@example.com", "a-long-password-42")
    client.login(username="operator", password="a-long-password-42")
    video = make_video()
    failed = stored([wire(video.id, "like")])
    Batch.objects.filter(id=failed).update(failed_at=timezone.now(), failures=1, error="DataError: injected")
    done = stored([wire(video.id, "share")])
    batch_process.apply(args=[done])

    page = client.get("/admin/scoring/batch/?failed_at__isnull=False")
    assert page.status_code == 200
    assert failed in page.content.decode() and done not in page.content.decode()
    celery_app.conf.task_always_eager = True  # the queued task runs here, as a worker would
    try:
        response = client.post("/admin/scoring/batch/", {"action": "retry", "_selected_action": [failed]})
    finally:
        celery_app.conf.task_always_eager = False
    assert response.status_code == 302
    assert Batch.objects.get(id=failed).processed_at is not None
    assert counted(video.id, "like")[0] == counted(video.id, "share")[0] == 1


def test_a_batch_redis_refuses_is_set_aside_and_does_not_hold_up_the_others(
    client: Client, make_video: Callable[..., Any], rankings_ready: None
) -> None:
    video = make_video()
    poisoned, waiting = stored([wire(video.id, "like")]), stored([wire(video.id, "share")])
    for batch_id in (poisoned, waiting):
        ledger.batch_process(batch_id=batch_id, apply=False)  # counted; the worker died before Redis
    # The first holds deltas the Lua script cannot apply (a bug, say); Redis refuses it, not the other.
    Batch.objects.filter(id=poisoned).update(
        deltas={scope_for(video.category_id): [[video.id, 0, 255, "not a number"]]}
    )

    repaired = batches_repair(requeue=False, unapplied_after_s=0)
    assert repaired.applied == 1
    assert Batch.objects.get(id=waiting).applied_at is not None
    batch = Batch.objects.get(id=poisoned)
    assert batch.failed_at is not None and batch.error.startswith("ResponseError")
    assert batches_repair(requeue=False, unapplied_after_s=0).applied == 0
    assert value(scrape(client), "ranking_batches_failed_total", reason="error") == 1
