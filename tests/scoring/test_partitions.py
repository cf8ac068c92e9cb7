"""Bounded dedupe state and ledger: time partitions, created ahead and on demand, dropped whole."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from leaderboard.windows import minute_floor
from scoring import counting, partitions
from scoring.ledger import batch_process, batch_store, window_rollover
from scoring.models import Batch, SeenEvent, WindowState
from scoring.partitions import SEEN_PERIOD_DAYS, SEEN_RETENTION, partitions_maintain, seen_period
from scoring.rebuild import rankings_rebuild
from tests.conftest import wire

Apply = Callable[[list[str]], Any]


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def anchor_set(moment: datetime) -> None:
    WindowState.objects.update_or_create(id=1, defaults={"anchor": moment})


def exists(name: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cur.fetchone()[0])


def seen_name(period: date) -> str:
    return f"scoring_seenevent_p{period:%Y%m%d}"


def batch_name(day: date) -> str:
    return f"scoring_batch_p{day:%Y%m%d}"


def payload_storage(table: str) -> str:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'payload'", [table]
        )
        return str(cur.fetchone()[0])


@pytest.fixture
def no_partitions(db: None) -> None:
    """No partition of either table exists (inside this test's transaction)."""
    with connection.cursor() as cur:
        for parent in (partitions.SEEN_TABLE, partitions.BATCH_TABLE):
            for name, _ in partitions._partitions(parent):
                cur.execute(f"DROP TABLE {name}")


@pytest.mark.django_db
def test_an_event_id_resent_after_a_period_boundary_counts_once(
    make_video: Callable[..., Any], apply_events: Apply
) -> None:
    video = make_video()
    boundary = midnight(seen_period(day=today()))
    event_id, now = str(uuid.uuid4()), timezone.now()
    anchor_set(boundary - timedelta(minutes=1))  # the last minute of the previous period
    first = apply_events(
        [wire(video.id, "like", event_id=event_id), wire(video.id, "view", user_id="u1", occurred_at=now)]
    )
    assert first.counted == 2

    anchor_set(boundary)  # the roll-over moved the windows into the next period
    again = apply_events(
        [
            wire(video.id, "like", event_id=event_id),
            # The first occurrence wins, whatever occurred_at a resend carries.
            wire(video.id, "like", event_id=event_id, occurred_at=now - timedelta(days=3)),
            # Same user, video and 30-minute bucket under a new event id: the bucket is taken.
            wire(video.id, "view", user_id="u1", occurred_at=now),
        ]
    )
    assert again.counted == 0
    rows = SeenEvent.objects.filter(key=event_id)
    assert [r.period for r in rows] == [seen_period(day=(boundary - timedelta(minutes=1)).date())]


@pytest.mark.django_db
def test_a_batch_never_fails_for_lack_of_a_partition(
    make_video: Callable[..., Any], apply_events: Apply, no_partitions: None
) -> None:
    # The roll-over stores its ledger batch inside the transaction that holds the anchor FOR UPDATE.
    now = timezone.now()
    anchor_set(minute_floor(now) - timedelta(minutes=2))
    assert window_rollover(now=now) == 2
    assert exists(batch_name(today()))

    video = make_video()
    assert apply_events([wire(video.id, "like")]).counted == 1
    assert exists(seen_name(seen_period(day=today())))

    # Windows anchored in a period, and a batch received on a day, that nobody prepared.
    later = minute_floor(now) + timedelta(days=3 * SEEN_PERIOD_DAYS)
    anchor_set(later)
    assert apply_events([wire(video.id, "share")]).counted == 1
    assert exists(seen_name(seen_period(day=later.date())))
    Batch.objects.create(received_at=later, source=Batch.Source.ROLLOVER, processed_at=later, deltas=[])
    assert exists(batch_name(later.date()))
    # Partitions made on demand store the payload as the ledger does: uncompressed (migration 0007).
    assert {payload_storage(batch_name(day)) for day in (today(), later.date())} == {"e"}


@pytest.mark.django_db
def test_maintenance_drops_expired_partitions_and_creates_the_coming_ones(no_partitions: None) -> None:
    now = timezone.now()
    anchor_set(minute_floor(now))
    current = seen_period(day=today())
    previous = current - timedelta(days=SEEN_PERIOD_DAYS)  # may hold keys claimed 8 days ago: kept
    expired = seen_period(day=today() - SEEN_RETENTION - timedelta(days=SEEN_PERIOD_DAYS))
    for period in (expired, previous):
        partitions.seen_partition_ensure(period=period)
        SeenEvent.objects.create(key=uuid.uuid4(), period=period)

    def batch_on(day: date, *, applied: bool) -> None:
        at = midnight(day) + timedelta(hours=12)
        Batch.objects.create(received_at=at, processed_at=at, applied_at=at if applied else None, deltas=[])

    old, stuck, recent = today() - timedelta(days=3), today() - timedelta(days=4), today() - timedelta(days=1)
    batch_on(old, applied=True)
    batch_on(stuck, applied=False)  # never applied (e.g. Redis down for days): its deltas must not be lost
    batch_on(recent, applied=True)

    result = partitions_maintain(now=now)

    assert sorted(result.dropped) == sorted([seen_name(expired), batch_name(old)])
    assert result.kept == [batch_name(stuck)]
    assert not exists(seen_name(expired)) and not exists(batch_name(old))
    assert exists(seen_name(previous)) and exists(batch_name(stuck)) and exists(batch_name(recent))
    assert SeenEvent.objects.count() == 1 and Batch.objects.count() == 2
    coming = [seen_name(current), seen_name(seen_period(day=today() + partitions.SEEN_AHEAD))]
    coming += [batch_name(today() + timedelta(days=n)) for n in range(partitions.BATCH_AHEAD_DAYS + 1)]
    assert all(exists(name) for name in coming)
    assert sorted(result.created) == sorted(set(coming))
    assert partitions_maintain(now=now).created == []


@pytest.mark.django_db
def test_dedupe_periods_expire_after_a_lagging_anchor_moved_on(no_partitions: None) -> None:
    # Keys are claimed in the anchor's period: while the roll-over lags, its period lives.
    now = timezone.now()
    stale = minute_floor(now) - timedelta(days=3 * SEEN_PERIOD_DAYS)
    anchor_set(stale)
    period = seen_period(day=stale.date())
    partitions.seen_partition_ensure(period=period)
    assert seen_name(period) not in partitions_maintain(now=now).dropped
    anchor_set(minute_floor(now))
    assert seen_name(period) in partitions_maintain(now=now).dropped


@pytest.mark.django_db(transaction=True)
def test_the_rollover_into_a_new_period_waits_for_claims_of_the_old_one(
    make_video: Callable[..., Any], event_types: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why one row per key holds across partitions: the anchor is the fence (docs/exactly-once.md)."""
    rankings_rebuild()
    video = make_video()
    boundary = midnight(seen_period(day=today()))
    anchor_set(boundary - timedelta(minutes=1))
    event_id = str(uuid.uuid4())
    first = str(batch_store(topic="t", messages=[[0, 0, wire(video.id, "like", event_id=event_id)]]).id)
    resend = str(batch_store(topic="t", messages=[[0, 1, wire(video.id, "like", event_id=event_id)]]).id)

    claimed, release = threading.Event(), threading.Event()
    counters_add = counting._counters_add

    def pause_after_the_claim(*args: Any) -> None:
        if threading.current_thread().name == "first":
            claimed.set()
            assert release.wait(30)
        counters_add(*args)

    monkeypatch.setattr(counting, "_counters_add", pause_after_the_claim)
    outcomes: dict[str, Any] = {}

    def run(name: str, work: Callable[[], Any]) -> threading.Thread:
        def target() -> None:
            try:
                outcomes[name] = work()
            finally:
                connection.close()

        thread = threading.Thread(target=target, name=name)
        thread.start()
        return thread

    batch = run("first", lambda: batch_process(batch_id=first))
    assert claimed.wait(30)  # the key is claimed in the old period, not yet committed
    rollover = run("rollover", lambda: window_rollover(now=boundary))
    time.sleep(0.5)
    assert rollover.is_alive()  # the anchor cannot enter the new period under an open claim
    release.set()
    batch.join(30)
    rollover.join(30)
    assert outcomes["first"].counted == 1 and outcomes["rollover"] == 1

    assert batch_process(batch_id=resend).counted == 0  # claimed in the new period: probes the old one
    assert SeenEvent.objects.filter(key=event_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_partition_another_process_is_creating_is_found_once_it_commits() -> None:
    """Two workers needing the same new partition: the second waits for the first and uses its partition.

    The second one's first look (before the lock) finds nothing; after the wait the partition exists.
    """
    import psycopg2

    period = seen_period(day=date(2099, 1, 15))
    name = seen_name(period)
    first = psycopg2.connect(**connection.get_connection_params())
    try:
        with first.cursor() as cur:  # a transaction that creates the partition and holds the creators' lock
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [partitions._CREATE_LOCKS[partitions.SEEN_TABLE]])
            cur.execute(f"CREATE TABLE {name} (LIKE {partitions.SEEN_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cur.execute(
                f"ALTER TABLE {partitions.SEEN_TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
                [period, period + timedelta(days=SEEN_PERIOD_DAYS)],
            )
        outcome: dict[str, Any] = {}

        def second() -> None:
            try:
                partitions.partitions_cache_clear()
                outcome["created"] = partitions.seen_partition_ensure(period=period)
            except Exception as exc:  # the failure this test is about
                outcome["error"] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive()  # waiting for the creators' lock
        first.commit()
        thread.join(30)
        assert outcome == {"created": False}
        assert exists(name)
    finally:
        first.rollback()
        with first.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        first.commit()
        first.close()
