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
from rankings import tasks as rankings_tasks
from scoring import tasks as scoring_tasks
from tests.processes import running, wait_for, worker

SCHEDULE: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
MAINTENANCE = [
    scoring_tasks.batches_repair,
    scoring_tasks.rankings_watchdog,
    scoring_tasks.rankings_rebuild,
    scoring_tasks.window_rollover,
    scoring_tasks.counters_fold,
    scoring_tasks.trending_rebase,
    scoring_tasks.partitions_maintain,
    rankings_tasks.snapshot_take,
]


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


def task_names(queue: str) -> list[str]:
    return sorted(m["headers"]["task"] for m in queued(queue))


def test_a_rebuild_and_the_other_maintenance_never_queue_behind_or_before_batches() -> None:
    scoring_tasks.batch_process.delay("4b0b8b7e-0000-4000-8000-000000000000")
    for task in MAINTENANCE:
        task.delay()
    assert task_names("batches") == ["scoring.tasks.batch_process"]
    assert task_names("maintenance") == sorted(task.name for task in MAINTENANCE)


def test_beat_sends_every_periodic_task_to_the_maintenance_queue_but_the_webhook_ones() -> None:
    for name in SCHEDULE:
        beat_sends(name)
    webhooks = {"rankings.tasks.webhooks_evaluate", "rankings.tasks.webhook_deliveries_requeue"}
    assert task_names("maintenance") == sorted(e["task"] for e in SCHEDULE.values() if e["task"] not in webhooks)
    # A rule must reach its receiver within 5 s, so its evaluation never waits behind a rebuild.
    assert task_names("webhooks") == sorted(webhooks)
    assert task_names("batches") == []


def test_webhook_tasks_have_a_queue_and_time_limits_of_their_own() -> None:
    tasks = [
        rankings_tasks.webhooks_evaluate,
        rankings_tasks.webhook_deliver,
        rankings_tasks.webhook_deliveries_requeue,
    ]
    rankings_tasks.webhook_deliver.delay(1)
    assert task_names("webhooks") == ["rankings.tasks.webhook_deliver"]
    for task in tasks:
        assert task.soft_time_limit and task.time_limit and task.soft_time_limit < task.time_limit, task.name


def test_every_task_has_a_soft_and_a_hard_time_limit() -> None:
    for task in [scoring_tasks.batch_process, *MAINTENANCE]:
        assert task.soft_time_limit and task.time_limit and task.soft_time_limit < task.time_limit, task.name
    assert scoring_tasks.batch_process.time_limit < scoring_tasks.rankings_rebuild.soft_time_limit
