"""Celery workers under outages: what a worker does when Postgres or Redis fail under it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from scoring.ledger import batch_store
from scoring.models import Batch
from scoring.rebuild import rankings_rebuild
from scoring.tasks import batch_process, batches_repair
from tests.conftest import wire
from tests.processes import running, wait_for, worker


def queue_batch(raws: list[str]) -> str:
    """What the bridge does: store the batch, then queue its task."""
    batch_id = str(batch_store(topic="t", messages=[[0, n, raw] for n, raw in enumerate(raws)]).id)
    batch_process.delay(batch_id)
    return batch_id


def processed(batch_id: str) -> bool:
    return Batch.objects.filter(id=batch_id, processed_at__isnull=False).exists()


def drop_other_connections() -> int:
    """What a Postgres restart or failover does to every open connection but this test's."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cur.fetchone()[0])


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_worker_recovers_when_postgres_drops_its_connection(make_video: Callable[..., Any], tmp_path: Path) -> None:
    rankings_rebuild()
    video = make_video()
    # One thread, so every task below runs on the connection that is dropped.
    with running(worker(tmp_path, concurrency=1)) as (wk,):
        first = queue_batch([wire(video.id, "like")])
        assert wait_for(lambda: Batch.objects.filter(id=first, applied_at__isnull=False).exists(), timeout=60)
        assert drop_other_connections() >= 1
        # The sweeper's first statement runs outside a transaction: a failure there leaves the
        # dead connection in place (inside atomic() Django closes it), so tasks after it need
        # the worker to retire it.
        batches_repair.delay()
        assert wait_for(lambda: re.search(r"batches_repair\[.*(succeeded|retry|raised)", wk.output()), timeout=20)
        second = queue_batch([wire(video.id, "share")])
        assert wait_for(lambda: processed(second), timeout=20), wk.output()[-3000:]
