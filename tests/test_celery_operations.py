"""Celery under backlog and outages: periodic tasks expire, maintenance has its own queue,
every task has time limits. Messages go through the real Redis broker of the test stack."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.beat import Scheduler
from django.conf import settings

from ranking_site.celery import app
from tests.processes import running, wait_for, worker

SCHEDULE: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE


def broker() -> Any:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)  # a plain node, in cluster runs too


def queued(queue: str) -> list[dict[str, Any]]:
    """The messages waiting in a queue (the Redis transport keeps each as a JSON envelope)."""
    return [json.loads(raw) for raw in broker().lrange(queue, 0, -1)]


def beat_sends(name: str, times: int = 1) -> None:
    """What celery beat does when an entry is due."""
    scheduler = Scheduler(app=app)
    for _ in range(times):
        scheduler.apply_async(scheduler.schedule[name])


def test_every_periodic_task_expires_before_its_next_run() -> None:
    for name, entry in SCHEDULE.items():
        expires = entry.get("options", {}).get("expires")
        assert expires is not None and 0 < expires < entry["schedule"], name


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_periodic_tasks_sent_while_workers_are_down_are_discarded_not_run(tmp_path: Path) -> None:
    beat_sends("batches-repair", times=20)
    messages = [m for queue in ("celery", "batches", "maintenance") for m in queued(queue)]
    assert len(messages) == 20
    assert all(m["headers"]["expires"] for m in messages), "sent without an expiry"
    time.sleep(SCHEDULE["batches-repair"]["options"]["expires"] + 0.5)
    with running(worker(tmp_path)) as (wk,):
        assert wait_for(lambda: wk.output().count("Discarding revoked task") == 20, timeout=30), wk.output()[-3000:]
        assert "succeeded" not in wk.output()
