"""The batch ledger between Kafka, Postgres and Redis: store, count once, apply once, repair.

A batch is received (payload stored, offsets then committed), processed (counters
and dedupe keys written in the same transaction that stores the Redis deltas here)
and applied (the deltas reached Redis, guarded by a marker set inside the same Lua
call). See docs/exactly-once.md for why each crash point is safe.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from leaderboard import store
from leaderboard.keys import scope_for
from leaderboard.windows import (
    MINUTE,
    WINDOW_BITS,
    epoch,
    hour_floor,
    hour_window_start,
    leaving_hours,
    leaving_minutes,
    minute_floor,
)
from scoring import signals
from scoring.buckets import hour_scores, minute_scores
from scoring.counting import Message, messages_count
from scoring.models import Batch, DeadLetter
from videos.selectors import category_rows, video_facts

logger = logging.getLogger(__name__)


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


def current_xid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_current_xact_id()::text::bigint")
        return int(cur.fetchone()[0])


def window_anchor_locked(*, exclusive: bool) -> datetime:
    """The anchored minute, locked for the rest of the transaction."""
    lock = "FOR UPDATE" if exclusive else "FOR SHARE"
    with connection.cursor() as cur:
        cur.execute(f"SELECT anchor FROM scoring_windowstate WHERE id = 1 {lock}")
        row = cur.fetchone()
    if row is None:
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO scoring_windowstate (id, anchor) VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
                [minute_floor(timezone.now())],
            )
        return window_anchor_locked(exclusive=exclusive)
    return row[0]


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
        counted = messages_count(messages=messages, anchor=window_anchor_locked(exclusive=False))
        deltas = counted.deltas
        outcome.counted, outcome.request_ids = counted.counted, counted.request_ids
        outcome.duplicates = outcome.received - outcome.counted - len(counted.dead)
        if counted.dead:
            DeadLetter.objects.bulk_create(
                DeadLetter(reason=reason, raw=raw, topic=topic, partition=part, offset=off)
                for part, off, raw, reason in counted.dead
            )
        outcome.dead_letters = len(counted.dead)
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


def batch_mark_applied(*, batch_id: str) -> None:
    Batch.objects.filter(id=batch_id, applied_at__isnull=True).update(applied_at=timezone.now())


def batch_apply(*, batch_id: str, deltas: store.ScopedDeltas | None = None) -> bool:
    """Apply a processed batch's deltas to Redis once per scope; False when a scope awaits its rebuild."""
    if deltas is None:
        batch = Batch.objects.filter(id=batch_id).only("deltas", "applied_at").first()
        if batch is None or batch.applied_at is not None:
            return True
        deltas = batch.deltas or {}
    try:
        store.deltas_apply(batch_id=batch_id, deltas=deltas)
    except store.RankingsNotBuilt:
        signals.rebuild_needed.send(sender=Batch)
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
        if not batch_apply(batch_id=str(batch.id), deltas=batch.deltas or {}):
            break
        applied += 1
    return RepairOutcome(requeued=requeued, applied=applied)


# --- periodic work ---------------------------------------------------------------------


def window_rollover(*, now: datetime | None = None) -> int:
    """Move the windows to the current minute; subtract the buckets that leave them.

    Returns how many minutes the anchor moved. The subtraction is stored as a
    ledger batch in the same transaction that moves the anchor, then applied
    like any other batch, so a crash in between is repaired by the sweeper.
    Minute counters that left the hour window are dropped in that transaction too.
    """
    target = minute_floor(now or timezone.now())
    with transaction.atomic():
        current = window_anchor_locked(exclusive=True)
        if current >= target:
            return 0
        leaving: list[tuple[int, datetime, int, float]] = []
        minutes = leaving_minutes(current, target)
        if minutes is not None:
            leaving += [
                (vid, minute, WINDOW_BITS["hour"], score)
                for vid, minute, score in minute_scores(since=minutes[0], until=minutes[1])
            ]
        masks: dict[tuple[int, datetime], int] = defaultdict(int)
        scores: dict[tuple[int, datetime], float] = {}
        for window, (lo, hi) in leaving_hours(current, target).items():
            for vid, hour, score, _ in hour_scores(since=lo, until=hi):
                masks[(vid, hour)] |= WINDOW_BITS[window]
                scores[(vid, hour)] = score
        leaving += [(vid, hour, mask, scores[(vid, hour)]) for (vid, hour), mask in masks.items()]
        with connection.cursor() as cur:
            cur.execute("UPDATE scoring_windowstate SET anchor = %s WHERE id = 1", [target])
            cur.execute("DELETE FROM scoring_minutecounter WHERE minute < %s", [hour_window_start(target)])
        # Only what the scopes hold leaves them: a hidden video's buckets are in no ranking.
        facts = video_facts(video_ids={row[0] for row in leaving})
        deltas: dict[str, list[list[float | int]]] = defaultdict(list)
        for vid, bucket, mask, score in leaving:
            video = facts.get(vid)
            if video is None or not video.published or not score:
                continue
            delta = [vid, epoch(bucket), mask, -score]
            deltas[scope_for(None)].append(delta)
            deltas[scope_for(video.category_id)].append(delta)
        batch = Batch.objects.create(
            source=Batch.Source.ROLLOVER, processed_at=timezone.now(), deltas=dict(deltas), xid=current_xid()
        )
    moved = int((target - current) / MINUTE)
    logger.info("window roll-over to %s: %d minute(s), %d bucket deltas", target.isoformat(), moved, len(leaving))
    try:
        store.deltas_apply(batch_id=str(batch.id), deltas=deltas)
        batch_mark_applied(batch_id=str(batch.id))
    except store.RankingsNotBuilt:
        logger.warning("rankings not built; roll-over batch %s left for the rebuild", batch.id)
    return moved


def trending_rebase(*, now: datetime | None = None, min_age_s: int | None = None) -> bool:
    """Move each scope's forward-decay reference time forward so scores stay in float range.

    True when any scope moved. Scopes are independent: each rebases in one call on its slot.
    """
    new_t0 = epoch(hour_floor(now or timezone.now()))
    min_age = settings.RANKING_TRENDING_REBASE_S if min_age_s is None else min_age_s
    moved = False
    for scope in [scope_for(None), *(scope_for(cid) for cid, *_ in category_rows())]:
        t0 = store.trend_t0(scope=scope)
        if t0 is not None and new_t0 - t0 >= min_age:
            moved = store.trending_rebase(scope=scope, new_t0=new_t0) or moved
    return moved


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
