"""Shared fixtures. Servers are real (see tests/stack_plugin.py); each test starts
with empty rankings in Redis and, through pytest-django, an isolated database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from core.redis import redis_client
from scoring.catalog_sync import category_cache_sync, category_scope_open, video_cache_sync
from scoring.ledger import batch_process, batch_store
from scoring.partitions import partitions_cache_clear
from scoring.rebuild import rankings_rebuild
from tests.factories import CategoryFactory, VideoFactory


@pytest.fixture(autouse=True)
def redis_clean() -> Iterator[None]:
    """Every test starts with an empty Redis (rankings, cache and Celery queues of this run)."""
    from django.conf import settings

    redis_client().flushdb()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    redis.Redis.from_url(settings.CACHE_REDIS_URL).flushdb()
    yield


@pytest.fixture(autouse=True)
def partitions_forgotten() -> None:
    """A test's transaction rolls back the partitions it created, even when the test ran the
    on-commit hooks that remember them; every test starts without that memory."""
    partitions_cache_clear()


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Tasks queued by the code under test (admin actions, a rebuild a batch asks for) run
    at once, in the caller, as a worker would run them."""
    from ranking_site.celery import app as celery_app

    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def fresh_topic(settings: Any) -> str:
    """A topic of this test's own: a consumer group reading from the earliest offset
    must not meet earlier tests' events (their video ids may exist again)."""
    from core.kafka import topic_ensure

    settings.KAFKA_TOPIC = f"{settings.KAFKA_TOPIC}-{uuid.uuid4().hex[:8]}"
    topic_ensure()
    return str(settings.KAFKA_TOPIC)


@pytest.fixture
def rankings_ready(db: None) -> None:
    """Built (empty) rankings, as after the first start."""
    rankings_rebuild()


@pytest.fixture
def event_types(db: None) -> None:
    """The event types of the data migration (transactional tests truncate them away)."""
    from importlib import import_module

    from events.models import EventType

    for name, weight, window, description in import_module("events.migrations.0002_event_types").EVENT_TYPES:
        EventType.objects.get_or_create(
            name=name, defaults={"weight": weight, "dedupe_window_seconds": window, "description": description}
        )


@pytest.fixture
def category(db: None, event_types: None) -> Any:
    return CategoryFactory(slug="music", name="Music")


@pytest.fixture
def make_video(db: None, category: Any) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("category", category)
        video: Any = VideoFactory(**kwargs)
        # The signal hooks run on commit, which never comes inside a test transaction.
        category_cache_sync(category_ids=[video.category_id])
        category_scope_open(category_id=video.category_id)
        video_cache_sync(video_ids=[video.id])
        return video

    return make


def counted(video_id: int, type_name: str | None = None) -> tuple[int, float]:
    """Events and units counted for a video (of one event type), over every hour: its hourly rows
    and minute rows together, as every reader of the counters sees them."""
    from events.models import EventType
    from scoring.selectors import counts_by_hour

    names = dict(EventType.objects.values_list("id", "name"))
    rows = [v for (_, t, _), v in counts_by_hour(video_ids=[video_id]).items() if type_name in (None, names[t])]
    return sum(r[0] for r in rows), sum(r[1] for r in rows)


def wire(
    video_id: int,
    type_: str = "view",
    *,
    occurred_at: datetime | None = None,
    user_id: str | None = None,
    event_id: str | None = None,
    watch_seconds: float | None = None,
) -> str:
    body: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),
        "video_id": video_id,
        "type": type_,
        "occurred_at": (occurred_at or timezone.now()).isoformat(),
    }
    if user_id is not None:
        body["user_id"] = user_id
    if watch_seconds is not None:
        body["watch_seconds"] = watch_seconds
    return json.dumps(body)


@pytest.fixture
def apply_events(rankings_ready: None) -> Callable[[list[str]], Any]:
    """Run raw wire messages through the worker path (store, count, apply) synchronously."""
    offset = iter(range(10**9))

    def apply(raws: list[str]) -> Any:
        batch = batch_store(topic="test", messages=[[0, next(offset), raw] for raw in raws])
        return batch_process(batch_id=str(batch.id))

    return apply


@pytest.fixture
def counters_fail(db: None) -> Callable[..., Callable[[], int]]:
    """Make Postgres refuse counter rows of one video with an SQLSTATE, the first ``times``
    attempts (every one when None); returns how many attempts reached the table so far.

    A trigger on the counters table: the error comes from the real server, as a deadlock
    (40001) or a data error (22P02) would. Needs the test's transaction, which drops it again.
    """

    def install(*, video_id: int, sqlstate: str, times: int | None = None) -> Callable[[], int]:
        with connection.cursor() as cur:
            # A sequence: its increments survive the rollback of the failed attempt.
            cur.execute("CREATE SEQUENCE test_attempts")
            cur.execute(
                f"""
                CREATE FUNCTION test_counters_fail() RETURNS trigger AS $$
                BEGIN
                    IF NEW.video_id = {int(video_id)}
                       AND nextval('test_attempts') <= {times if times is not None else "'Infinity'::float8"} THEN
                        RAISE EXCEPTION 'injected failure' USING ERRCODE = '{sqlstate}';
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql
                """
            )
            cur.execute(
                "CREATE TRIGGER test_counters_fail BEFORE INSERT ON scoring_minutecounter "
                "FOR EACH ROW EXECUTE FUNCTION test_counters_fail()"
            )

        def attempts() -> int:
            with connection.cursor() as cur:
                cur.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_attempts")
                return int(cur.fetchone()[0])

        return attempts

    return install
