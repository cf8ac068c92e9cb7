"""`manage.py seed`: sizes, determinism, the pipeline's rules, and agreement between the paths."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from kafka import KafkaConsumer, TopicPartition

from core.kafka import key_partition
from core.redis import redis_client
from demo.catalogue import SEED_EMAIL_DOMAIN
from demo.plan import SeedPlan
from demo.seeding import data_seed
from events.models import EventType
from events.wire import WireEvent, record_parse
from leaderboard import keys as rk
from scoring.drift import rankings_drift_check
from scoring.ledger import batch_process, batch_store
from scoring.selectors import counts_by_hour
from videos.models import Video

pytestmark = pytest.mark.django_db

SMALL = {"videos": 40, "users": 15, "events": 2500, "days": 7}


def counters() -> list[tuple[Any, ...]]:
    """(video, type, hour, events, units) of every hour bucket: its hourly and minute rows together."""
    names = dict(EventType.objects.values_list("id", "name"))
    return sorted((v, names[t], hour, *counts) for (v, t, hour), counts in counts_by_hour().items())


def total_events() -> int:
    return sum(events for events, _ in counts_by_hour().values())


def seed(**kwargs: Any) -> Any:
    plan = {**SMALL, "reset": True, "seed": 7, **kwargs}
    return data_seed(plan=SeedPlan(**plan))


def test_seed_via_db_creates_the_requested_counts(event_types: None) -> None:
    out = io.StringIO()
    call_command(
        "seed", "--videos=40", "--users=15", "--events=2500", "--seed=3", "--reset", "--no-progress", stdout=out
    )

    assert Video.objects.count() == 40
    assert User.objects.filter(email__endswith=f"@{SEED_EMAIL_DOMAIN}").count() == 15
    assert total_events() == 2500
    assert "40 videos, 2500 events" in out.getvalue()
    # Every video of the history is in the metadata cache, and the rankings agree with Postgres.
    assert redis_client().exists(rk.ready_key(rk.GLOBAL))
    call_command("reindex", "--check", stdout=io.StringIO())


def test_same_seed_gives_the_same_counters_and_another_seed_does_not(event_types: None) -> None:
    now = timezone.now()
    seed(now=now)
    first = counters()
    seed(now=now)
    assert counters() == first
    seed(now=now, seed=8)
    assert counters() != first


def test_history_obeys_the_pipeline_rules(event_types: None) -> None:
    now = timezone.now()
    seed(now=now, events=4000)
    rows = counts_by_hour()
    published: dict[int, datetime | None] = dict(Video.objects.values_list("id", "published_at"))
    oldest = now - timedelta(days=7)
    assert all(oldest - timedelta(hours=1) < hour <= now for _, _, hour in rows)
    # A video only gets events from the hour after it was published.
    assert all(hour >= at - timedelta(hours=1) for v, _, hour in rows if (at := published[v]) is not None)
    # Evenings (UTC) are busier than nights.
    by_hour = {h: 0 for h in range(24)}
    for (_, _, hour), (events, _) in rows.items():
        by_hour[hour.hour] += events
    assert sum(by_hour[h] for h in (18, 19, 20, 21)) > 2 * sum(by_hour[h] for h in (2, 3, 4, 5))
    # Zipf-like: the most popular tenth of the videos draws most of the traffic.
    totals: dict[int, int] = {}
    for (v, _, _), (events, _) in rows.items():
        totals[v] = totals.get(v, 0) + events
    per_video = sorted(totals.values(), reverse=True)
    assert sum(per_video[:4]) > 0.4 * sum(per_video)
    assert rankings_drift_check().drifted is False


def test_without_reset_seed_adds(event_types: None) -> None:
    seed(videos=10, users=5, events=300)
    seed(videos=6, users=2, events=200, reset=False, seed=9)
    assert Video.objects.count() == 16
    assert User.objects.filter(email__endswith=f"@{SEED_EMAIL_DOMAIN}").count() == 7
    assert total_events() == 500
    # Adding events only: they go to the existing catalogue.
    seed(videos=0, users=0, events=100, reset=False, seed=10)
    assert Video.objects.count() == 16
    assert total_events() == 600


def test_bad_flags_are_refused(event_types: None) -> None:
    with pytest.raises(CommandError, match="7 days"):
        call_command("seed", "--via=kafka", "--days=8", "--no-progress")
    with pytest.raises(CommandError, match="at most 1000"):
        call_command("seed", "--via=api", "--batch=2000", "--no-progress")


def _consume_all(topic: str, expected: int) -> list[bytes]:
    """Every record of the topic until ``expected`` events, read without a consumer group (no join
    to wait for). Each event must be on its video's partition, in either record shape."""
    from django.conf import settings

    consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ids = tuple(tp.partition for tp in partitions)
        values: list[bytes] = []
        deadline = timezone.now() + timedelta(seconds=60)
        while _events_in(values) < expected and timezone.now() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for r in records:
                    values.append(r.value)
                    for _, event in record_parse(r.value):
                        assert isinstance(event, WireEvent)
                        assert r.partition == key_partition(str(event.video_id).encode(), ids)
        return values
    finally:
        consumer.close()


def _events_in(values: list[bytes]) -> int:
    return sum(len(record_parse(v)) for v in values)


def test_kafka_path_counts_the_same_history_as_the_db_path(event_types: None) -> None:
    """The stream keeps the pipeline's rules, so the workers count every event the db path writes."""
    now = timezone.now()
    topic = f"seed-test-{uuid.uuid4().hex[:8]}"
    with override_settings(KAFKA_TOPIC=topic):
        result = seed(now=now, via="kafka", events=1500, batch=400)
    assert result.events == 1500
    values = _consume_all(topic, 1500)
    assert len(values) == 1500
    for start in range(0, len(values), 500):
        messages: list[list[Any]] = [[0, start + i, v.decode()] for i, v in enumerate(values[start : start + 500])]
        outcome = batch_process(batch_id=str(batch_store(topic=topic, messages=messages).id))
        assert outcome.counted == len(messages) and outcome.dead_letters == 0
    via_kafka = counters()
    assert rankings_drift_check().drifted is False  # the live path kept Redis equal to Postgres

    seed(now=now, via="db", events=1500)
    via_db = counters()
    assert [r[:4] for r in via_kafka] == [r[:4] for r in via_db]
    assert all(a[4] == pytest.approx(b[4], rel=1e-9) for a, b in zip(via_kafka, via_db, strict=True))


@pytest.mark.django_db(transaction=True)
def test_api_path_counts_the_same_history_as_the_db_path(event_types: None, live_server: Any) -> None:
    """Through the HTTP API (key made and revoked by the seed), Kafka and the workers."""
    from events.models import ApiKey

    now = timezone.now()
    topic = f"seed-api-test-{uuid.uuid4().hex[:8]}"
    with override_settings(KAFKA_TOPIC=topic):
        result = seed(now=now, via="api", events=1200, batch=500, url=f"{live_server.url}/api/v1/events/")
    assert result.events == 1200
    assert ApiKey.objects.get(name="seed").revoked is True
    # Hidden and removed videos got their status once their history was in.
    assert Video.objects.exclude(status="published").exists()
    values = _consume_all(topic, 1200)
    assert _events_in(values) == 1200  # in request records: fewer records than events
    assert len(values) < 1200
    for start in range(0, len(values), 5):
        messages: list[list[Any]] = [[0, start + i, v.decode()] for i, v in enumerate(values[start : start + 5])]
        outcome = batch_process(batch_id=str(batch_store(topic=topic, messages=messages).id))
        assert outcome.counted == _events_in(values[start : start + 5])
    via_api = counters()
    assert rankings_drift_check().drifted is False

    seed(now=now, via="db", events=1200)
    via_db = counters()
    assert [r[:4] for r in via_api] == [r[:4] for r in via_db]


@pytest.mark.django_db(transaction=True)
def test_a_big_load_builds_the_search_indexes_beside_the_history(
    event_types: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past DEFER_INDEXES_FROM videos the admin's search indexes are dropped for the COPY and
    built on a second connection while the history is written; they are all there at the end."""
    import threading

    from django.db import connection

    from demo import seeding
    from videos.services import SEARCH_INDEXES

    built: list[tuple[str, list[str]]] = []
    create = seeding.video_search_indexes_create

    def recorded() -> list[str]:
        names = create()
        built.append((threading.current_thread().name, names))
        return names

    monkeypatch.setattr(seeding, "DEFER_INDEXES_FROM", 10)
    monkeypatch.setattr(seeding, "video_search_indexes_create", recorded)
    seed(videos=40, users=15, events=2500)

    assert built == [("seed-meanwhile", list(SEARCH_INDEXES)), ("MainThread", [])]
    with connection.cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE indexname = ANY(%s)", [list(SEARCH_INDEXES)])
        assert {r[0] for r in cur.fetchall()} == set(SEARCH_INDEXES)
    assert Video.objects.count() == 40
    assert total_events() == 2500
    assert rankings_drift_check().drifted is False
