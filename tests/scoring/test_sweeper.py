"""The sweeper re-queues a batch only when its task is lost, never one still waiting in the
broker: under a backlog it must not flood the queue with no-op tasks.

The broker is the real Redis of the test stack; no worker runs, so queued tasks stay there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from scoring.bridge import celery_enqueue, hand_off
from scoring.ledger import batch_store
from scoring.models import Batch
from scoring.partitions import batch_partition_ensure
from scoring.tasks import batch_process, batches_repair
from tests.conftest import wire

pytestmark = pytest.mark.django_db


def broker() -> Any:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)  # a plain node, in cluster runs too


def waiting() -> int:
    """Batch tasks in the broker's queue (a Redis list named after the queue)."""
    return int(broker().llen(batch_process.app.conf.task_default_queue))


def handed_off(n: int, video_id: int) -> list[str]:
    """What the bridge does n times: store a batch, queue its task."""
    return [hand_off(topic="t", messages=[[0, i, wire(video_id)]], enqueue=celery_enqueue) for i in range(n)]


def age(batch_ids: list[str], seconds: float) -> None:
    past = timezone.now() - timedelta(seconds=seconds)
    batch_partition_ensure(received_at=past)  # shortly after midnight UTC, the past is yesterday's partition
    Batch.objects.filter(id__in=batch_ids).update(received_at=past, queued_at=past)


def sweep() -> dict[str, int]:
    result = batches_repair.apply()
    assert result.successful(), result.traceback
    return dict(result.get())


def test_batches_waiting_in_a_backlog_are_not_queued_again(make_video: Callable[..., Any]) -> None:
    ids = handed_off(30, make_video().id)
    assert waiting() == 30
    age(ids, 600)  # workers are ten minutes behind
    assert sweep()["requeued"] == 0
    assert waiting() == 30


def test_a_lost_task_is_queued_again_once_its_lease_has_passed(make_video: Callable[..., Any]) -> None:
    (batch_id,) = handed_off(1, make_video().id)
    broker().flushdb()  # the broker lost its data
    assert sweep()["requeued"] == 0, "queued moments ago: its task may still be on its way"
    age([batch_id], settings.SCORING_REQUEUE_LEASE_S + 1)
    assert sweep()["requeued"] == 1
    assert waiting() == 1
    assert sweep()["requeued"] == 0, "queued again just now: a new lease"
    assert waiting() == 1


def test_a_batch_whose_task_could_not_be_queued_is_queued_at_the_next_sweep(make_video: Callable[..., Any]) -> None:
    def broker_down(batch_id: str) -> None:
        raise ConnectionError("broker down")

    batch_id = hand_off(topic="t", messages=[[0, 0, wire(make_video().id)]], enqueue=broker_down)
    assert Batch.objects.get(id=batch_id).queued_at is None
    assert sweep()["requeued"] == 1
    assert waiting() == 1


@pytest.mark.django_db(transaction=True)
def test_a_batch_a_worker_is_processing_is_not_queued_again(make_video: Callable[..., Any]) -> None:
    batch_id = str(batch_store(topic="t", messages=[[0, 0, wire(make_video().id)]]).id)
    age([batch_id], settings.SCORING_REQUEUE_LEASE_S + 1)
    locked, release = threading.Event(), threading.Event()

    def worker_holding_the_row() -> None:  # what ledger.batch_process does for the whole transaction
        try:
            with transaction.atomic():
                Batch.objects.select_for_update().get(id=batch_id)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=worker_holding_the_row)
    holder.start()
    try:
        assert locked.wait(10)
        assert sweep()["requeued"] == 0
    finally:
        release.set()
        holder.join()
    assert sweep()["requeued"] == 1
    connection.close()
