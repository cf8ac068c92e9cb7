"""Writes on the event path after Kafka: store a batch, count it once, hand it to Redis.

See docs/exactly-once.md for the states a batch goes through and why each
crash point is safe.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from events.models import Batch, DeadLetter, EventType
from events.wire import WireError, WireEvent, wire_parse
from rankings.services import (
    RankingsNotBuilt,
    batch_mark_applied,
    current_xid,
    deltas_apply,
    window_hour_locked,
)
from rankings.windows import epoch, hour_floor, window_mask

logger = logging.getLogger(__name__)

Message = Sequence[Any]  # [partition, offset, raw value]


@dataclass
class BatchOutcome:
    batch_id: str
    received: int = 0
    counted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    already_processed: bool = False
    applied: bool = False
    request_ids: list[str] = field(default_factory=list)  # lets a log line follow an event from the API


def batch_store(*, topic: str, messages: Sequence[Message], source: str = Batch.Source.KAFKA) -> Batch:
    """Persist raw messages; once this returns, Kafka offsets may be committed."""
    return Batch.objects.create(source=source, payload={"topic": topic, "messages": messages})


def _count_units(event: WireEvent, duration: int) -> float:
    if event.type == "watch":
        return min((event.watch_seconds or 0.0) / duration, 1.0) if duration > 0 else 0.0
    return 1.0


def batch_process(*, batch_id: str, apply: bool = True) -> BatchOutcome:
    """Count a stored batch exactly once, then apply its deltas to Redis.

    Idempotent: the batch row is locked and marked processed in the same
    transaction as the counters; every event id and per-user dedupe bucket
    is claimed once in ``SeenEvent``, so overlapping redeliveries count once.
    ``apply=False`` stops after the commit, the state a crash there leaves.
    """
    outcome = BatchOutcome(batch_id=batch_id)
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(id=batch_id).first()
        if batch is None or batch.processed_at is not None:
            outcome.already_processed = True
            return outcome
        payload = batch.payload or {}
        topic = str(payload.get("topic", ""))
        messages = payload.get("messages", [])
        outcome.received = len(messages)
        deltas, dead, outcome.counted, outcome.request_ids = _count(messages)
        outcome.duplicates = outcome.received - outcome.counted - len(dead)
        if dead:
            DeadLetter.objects.bulk_create(
                DeadLetter(reason=reason, raw=raw, topic=topic, partition=part, offset=off)
                for part, off, raw, reason in dead
            )
        outcome.dead_letters = len(dead)
        now = timezone.now()
        Batch.objects.filter(id=batch_id).update(
            processed_at=now,
            deltas=deltas,
            xid=current_xid(),
            counted=outcome.counted,
            payload={"topic": topic, "messages": []},
            applied_at=now if not deltas else None,
        )
    if deltas and apply:
        outcome.applied = batch_apply(batch_id=batch_id, deltas=deltas)
    return outcome


DeadRow = tuple[Any, Any, str, str]  # partition, offset, raw, reason


def _count(messages: list[Message]) -> tuple[list[list[float | int]], list[DeadRow], int, list[str]]:
    """Inside the batch transaction: dedupe, upsert counters, return Redis deltas and dead letters."""
    types = {t.name: t for t in EventType.objects.all()}
    dead: list[DeadRow] = []
    parsed: list[tuple[Message, WireEvent]] = []
    for message in messages:
        part, off, raw = message
        try:
            event = wire_parse(str(raw))
            if event.type not in types:
                raise WireError(f"unknown event type {event.type!r}")
        except WireError as exc:
            dead.append((part, off, str(raw), str(exc)))
            continue
        parsed.append((message, event))

    durations: dict[int, int] = {}
    if parsed:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT id, duration_seconds FROM videos_video WHERE id = ANY(%s)",
                [sorted({e.video_id for _, e in parsed})],
            )
            durations = dict(cur.fetchall())
    events: list[WireEvent] = []
    for (part, off, raw), event in parsed:
        if event.video_id not in durations:
            dead.append((part, off, str(raw), f"unknown video {event.video_id}"))
        else:
            events.append(event)

    current_hour = window_hour_locked(exclusive=False)
    # Keys travel as canonical text both ways: turning every returned uuid into a UUID
    # object (psycopg2's adapter) and back cost more than the rest of the dedupe.
    keys: list[tuple[str, str | None]] = []
    for e in events:
        bucket = e.dedupe_key(types[e.type].dedupe_window_seconds)
        keys.append((str(e.event_id), None if bucket is None else str(bucket)))
    all_keys = sorted({k for pair in keys for k in pair if k is not None})
    fresh: set[str] = set()
    if all_keys:
        with connection.cursor() as cur:
            cur.execute(
                """
                INSERT INTO events_seenevent (key, seen_at)
                SELECT k, now() FROM unnest(%s::uuid[]) AS k
                ON CONFLICT (key) DO NOTHING RETURNING key::text
                """,
                [all_keys],
            )
            fresh = {r[0] for r in cur.fetchall()}

    claimed: set[str] = set()
    counters: dict[tuple[int, int, object], list[float]] = defaultdict(lambda: [0, 0.0])
    counted = 0
    for event, (event_key, user_key) in zip(events, keys, strict=True):
        ok = event_key in fresh and event_key not in claimed
        if ok and user_key is not None:
            ok = user_key in fresh and user_key not in claimed
        claimed.add(event_key)
        if user_key is not None and ok:
            claimed.add(user_key)
        if not ok:
            continue
        counted += 1
        slot = counters[(event.video_id, types[event.type].id, hour_floor(event.occurred_at))]
        slot[0] += 1
        slot[1] += _count_units(event, durations[event.video_id])
    if not counters:
        return [], dead, counted, _request_ids(parsed)
    rows = sorted(counters.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]))
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO events_hourlycounter (video_id, event_type_id, hour, events, units)
            SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::bigint[], %s::float8[])
            ON CONFLICT (video_id, event_type_id, hour) DO UPDATE
            SET events = events_hourlycounter.events + EXCLUDED.events,
                units = events_hourlycounter.units + EXCLUDED.units
            """,
            [
                [k[0] for k, _ in rows],
                [k[1] for k, _ in rows],
                [k[2] for k, _ in rows],
                [int(v[0]) for _, v in rows],
                [float(v[1]) for _, v in rows],
            ],
        )
    weights = {t.id: t.weight for t in types.values()}
    scores: dict[tuple[int, object], float] = defaultdict(float)
    for (vid, type_id, hour), (_, units) in rows:
        scores[(vid, hour)] += weights[type_id] * units
    deltas: list[list[float | int]] = [
        [vid, epoch(hour), window_mask(hour, current_hour), score]  # type: ignore[arg-type]
        for (vid, hour), score in scores.items()
        if score != 0
    ]
    return deltas, dead, counted, _request_ids(parsed)


def _request_ids(parsed: list[tuple[Message, WireEvent]]) -> list[str]:
    return sorted({e.request_id for _, e in parsed if e.request_id})


def batch_apply(*, batch_id: str, deltas: list[list[float | int]] | None = None) -> bool:
    """Apply a processed batch's deltas to Redis once; False when it must wait for a rebuild."""
    if deltas is None:
        batch = Batch.objects.filter(id=batch_id).only("deltas", "applied_at").first()
        if batch is None or batch.applied_at is not None:
            return True
        deltas = batch.deltas or []
    try:
        deltas_apply(batch_id=batch_id, deltas=deltas)
    except RankingsNotBuilt:
        from rankings.tasks import rankings_rebuild

        rankings_rebuild.delay()
        return False
    batch_mark_applied(batch_id=batch_id)
    return True


@dataclass
class RepairOutcome:
    requeued: list[str]
    applied: int


def batches_repair(*, unprocessed_after_s: float = 15.0, unapplied_after_s: float = 5.0) -> RepairOutcome:
    """Find batches a crash left behind: queue unprocessed ones, apply unapplied ones."""
    now = timezone.now()
    requeued = [
        str(b)
        for b in Batch.objects.filter(
            processed_at__isnull=True, received_at__lt=now - timedelta(seconds=unprocessed_after_s)
        ).values_list("id", flat=True)[:500]
    ]
    applied = 0
    pending = Batch.objects.filter(
        processed_at__isnull=False,
        applied_at__isnull=True,
        processed_at__lt=now - timedelta(seconds=unapplied_after_s),
    ).order_by("processed_at")
    for batch in pending[:500]:
        if not batch_apply(batch_id=str(batch.id), deltas=batch.deltas or []):
            break
        applied += 1
    return RepairOutcome(requeued=requeued, applied=applied)


def seen_events_prune(*, older_than: timedelta = timedelta(days=8), limit: int = 50_000) -> int:
    """Forget dedupe keys older than any event the API still accepts (7 days)."""
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM events_seenevent WHERE key IN (SELECT key FROM events_seenevent WHERE seen_at < %s LIMIT %s)",
            [timezone.now() - older_than, limit],
        )
        seen = cur.rowcount
        cur.execute(
            "DELETE FROM events_batch WHERE id IN (SELECT id FROM events_batch "
            "WHERE applied_at IS NOT NULL AND applied_at < %s LIMIT %s)",
            [timezone.now() - timedelta(days=2), limit],
        )
    return int(seen)


@dataclass
class ReplayOutcome:
    replayed: int
    failed: int


def dead_letter_replay(*, dead_letter_ids: list[int]) -> ReplayOutcome:
    """Send dead letters through the pipeline again (e.g. after creating a missing video)."""
    letters = list(DeadLetter.objects.filter(id__in=dead_letter_ids, replayed_at__isnull=True))
    if not letters:
        return ReplayOutcome(0, 0)
    batch = batch_store(
        topic="replay",
        messages=[[dl.partition, dl.offset, dl.raw] for dl in letters],
        source=Batch.Source.REPLAY,
    )
    outcome = batch_process(batch_id=str(batch.id))
    failed = outcome.dead_letters  # the letters that failed again, stored anew
    DeadLetter.objects.filter(id__in=[dl.id for dl in letters]).update(replayed_at=timezone.now())
    logger.info("dead-letter replay: %s", json.dumps(outcome.__dict__))
    return ReplayOutcome(replayed=len(letters) - failed, failed=failed)
