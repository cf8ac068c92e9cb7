"""The batch ledger between Kafka, Postgres and Redis: store, count once, apply once, repair.

A batch is received (payload stored, offsets then committed), processed (counters
and dedupe keys written in the same transaction that stores the Redis deltas here)
and applied (the deltas reached Redis, guarded by a marker set inside the same Lua
call). See docs/exactly-once.md for why each crash point is safe.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter as CodeCounter
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import OutOfMemoryError, ResponseError

from core import metrics
from core.redis import REDIS_UNAVAILABLE
from core.task_policy import error_transient
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
from scoring.counting import Message, messages_count, scopes_route
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
    """Persist raw messages; once this returns, Kafka offsets may be committed.

    The caller queues (or runs) the batch's task next, so the batch is stored as queued now.
    """
    return Batch.objects.create(source=source, payload={"topic": topic, "messages": messages}, queued_at=timezone.now())


def batch_mark_unqueued(*, batch_id: str) -> None:
    """Its task could not be queued (broker down): the sweeper queues it as soon as it can."""
    Batch.objects.filter(id=batch_id, processed_at__isnull=True).update(queued_at=None)


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
        counted = messages_count(messages=messages, anchor=window_anchor_locked(exclusive=False))
        outcome.received = counted.received
        deltas = counted.deltas
        accepted = [[ms, n] for ms, n in sorted(counted.accepted.items())]
        outcome.counted, outcome.request_ids = counted.counted, counted.request_ids
        outcome.duplicates = outcome.received - outcome.counted - len(counted.dead)
        if counted.dead:
            DeadLetter.objects.bulk_create(
                DeadLetter(reason=reason, raw=raw, topic=topic, partition=part, offset=off)
                for part, off, raw, reason, _ in counted.dead
            )
        outcome.dead_letters = len(counted.dead)
        now = timezone.now()
        Batch.objects.filter(id=batch_id).update(
            processed_at=now,
            deltas=deltas,
            accepted=accepted or None,
            xid=current_xid(),
            counted=outcome.counted,
            payload={"topic": topic, "messages": []},
            applied_at=now if not deltas else None,
        )
    metrics.events_counted(
        counted=outcome.counted,
        duplicates=outcome.duplicates,
        dead_letters=CodeCounter(code for *_, code in counted.dead),
    )
    if not deltas:
        metrics.events_visible(accepted=accepted)  # nothing to change in Redis: done at the commit
    elif apply:
        try:
            outcome.applied = batch_apply(batch_id=batch_id, deltas=deltas, accepted=accepted)
        except REDIS_UNAVAILABLE:
            # Counted in Postgres already: the sweeper applies the deltas once Redis answers.
            logger.warning("Redis unavailable after counting batch %s; the sweeper will apply it", batch_id)
    return outcome


def batch_failure_record(*, batch_id: str, error: str, permanent: bool) -> bool:
    """A task gave up on this batch: count the failure and keep the error with the batch.

    The batch stays in the ledger. A permanent error (one every attempt would raise
    again), or the ``SCORING_BATCH_MAX_FAILURES``-th failure of any kind, also sets
    ``failed_at``: the sweeper then leaves the batch to an operator (admin, "Retry")
    instead of re-queueing it forever. Returns whether the batch is now failed.
    """
    with connection.cursor() as cur:
        cur.execute(
            """
            UPDATE scoring_batch
            SET failures = failures + 1, error = %s,
                failed_at = CASE WHEN %s OR failures + 1 >= %s THEN now() END
            WHERE id = %s AND applied_at IS NULL AND failed_at IS NULL
            RETURNING failed_at IS NOT NULL
            """,
            [error[:2000], permanent, settings.SCORING_BATCH_MAX_FAILURES, batch_id],
        )
        row = cur.fetchone()
    return bool(row and row[0])


def batches_retry(*, batch_ids: Sequence[str]) -> list[str]:
    """Give failed batches another chance (an operator fixed the cause); returns the ones to queue.

    Processed ones (their Redis apply failed) are applied by the sweeper once ``failed_at`` is cleared.
    """
    retried = Batch.objects.filter(id__in=batch_ids, failed_at__isnull=False)
    unprocessed = [str(b) for b in retried.filter(processed_at__isnull=True).values_list("id", flat=True)]
    retried.update(failed_at=None, failures=0, error="")
    return unprocessed


def batch_mark_applied(*, batch_id: str) -> None:
    Batch.objects.filter(id=batch_id, applied_at__isnull=True).update(applied_at=timezone.now())


def batch_apply(
    *, batch_id: str, deltas: store.ScopedDeltas | None = None, accepted: list[list[int]] | None = None
) -> bool:
    """Apply a processed batch's deltas to Redis once per scope; False when a scope awaits its rebuild.

    ``accepted`` (the batch's acceptance times, see counting.Counted) is observed as
    event-to-visible latency by the call that changed Redis, not by one that found the
    batch applied already.
    """
    if deltas is None:
        batch = Batch.objects.filter(id=batch_id).only("deltas", "accepted", "applied_at").first()
        if batch is None or batch.applied_at is not None:
            return True
        deltas, accepted = batch.deltas or {}, batch.accepted
    try:
        changed = store.deltas_apply(batch_id=batch_id, deltas=deltas)
    except store.RankingsNotBuilt:
        signals.rebuild_needed.send(sender=Batch)
        return False
    if changed and accepted:
        metrics.events_visible(accepted=accepted)
    batch_mark_applied(batch_id=batch_id)
    return True


@dataclass
class RepairOutcome:
    requeued: list[str]
    applied: int


def batches_repair(
    *, requeue: bool, lease_s: float | None = None, unapplied_after_s: float = 5.0, limit: int = 500
) -> RepairOutcome:
    """Find batches a crash left behind: claim lost ones for re-queueing, apply unapplied ones.

    A batch is lost when nothing will process it: it is unprocessed and not failed, no
    worker holds its row lock (SKIP LOCKED), and its task was never queued or was queued
    more than ``lease_s`` ago. The caller passes ``requeue=False`` while batch tasks wait
    in the broker: a batch queued before them may be among them, and queueing it again
    would only add a no-op task to a queue that is already behind (docs/exactly-once.md).
    The returned batches are marked queued now; the caller queues their tasks.
    """
    now = timezone.now()
    lease = settings.SCORING_REQUEUE_LEASE_S if lease_s is None else lease_s
    requeued: list[str] = []
    if requeue:
        with connection.cursor() as cur:
            cur.execute(
                """
                UPDATE scoring_batch SET queued_at = %(now)s
                WHERE id IN (
                    SELECT id FROM scoring_batch
                    WHERE processed_at IS NULL AND failed_at IS NULL
                      AND (queued_at IS NULL OR queued_at < %(cutoff)s)
                    ORDER BY received_at
                    LIMIT %(limit)s
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING id::text
                """,
                {"now": now, "cutoff": now - timedelta(seconds=lease), "limit": limit},
            )
            requeued = [row[0] for row in cur.fetchall()]
    applied = 0
    pending = Batch.objects.filter(
        processed_at__isnull=False,
        applied_at__isnull=True,
        failed_at__isnull=True,
        processed_at__lt=now - timedelta(seconds=unapplied_after_s),
    ).order_by("processed_at")
    for batch in pending[:limit]:
        try:
            if not batch_apply(batch_id=str(batch.id), deltas=batch.deltas or {}, accepted=batch.accepted):
                break
        except ResponseError as exc:
            if error_transient(exc) or isinstance(exc, OutOfMemoryError):
                raise  # Redis itself is in trouble: every batch waits, and the next sweep tries again
            # Redis answered and refused this batch's deltas: every sweep would fail on it the same
            # way, and the batches after it would never be applied.
            logger.error("Redis refuses batch %s; set aside for an operator", batch.id, exc_info=True)
            metrics.batch_failed(reason="error")
            batch_failure_record(batch_id=str(batch.id), error=f"{type(exc).__name__}: {exc}", permanent=True)
            continue
        applied += 1
    return RepairOutcome(requeued=requeued, applied=applied)


# --- periodic work ---------------------------------------------------------------------


def window_rollover(*, now: datetime | None = None) -> int:
    """Move the windows to the current minute; subtract the buckets that leave them.

    Returns how many minutes the anchor moved. The subtraction is stored as a
    ledger batch in the same transaction that moves the anchor, then applied
    like any other batch, so a crash in between is repaired by the sweeper.
    The minute counters that left the hour window stay until ``counters_fold`` moves them.
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
        # Only what the scopes hold leaves them: a hidden video's buckets are in no ranking.
        facts = video_facts(video_ids={row[0] for row in leaving})
        deltas = scopes_route(((vid, bucket, mask, -score) for vid, bucket, mask, score in leaving), facts=facts)
        batch = Batch.objects.create(
            source=Batch.Source.ROLLOVER, processed_at=timezone.now(), deltas=deltas, xid=current_xid()
        )
    moved = int((target - current) / MINUTE)
    logger.info("window roll-over to %s: %d minute(s), %d bucket deltas", target.isoformat(), moved, len(leaving))
    try:
        store.deltas_apply(batch_id=str(batch.id), deltas=deltas)
        batch_mark_applied(batch_id=str(batch.id))
    except store.RankingsNotBuilt:
        logger.warning("rankings not built; roll-over batch %s left for the rebuild", batch.id)
    return moved


# Minute rows moved into the hourly rows per transaction: a fold never holds many row locks at once.
FOLD_CHUNK = 20_000
# One run's time: a busy hour holds millions of minute rows (6-22 µs of Postgres each to move, measured
# at 100,000 and 1,000,000 videos: docs/benchmarks.md).
FOLD_BUDGET_S = 120.0
# Picks minute rows of hours wholly before the hour window, deletes them and adds them to their
# hourly rows, in key order (as the batches lock the hourly rows: no deadlock between them).
FOLD_SQL = """
    WITH picked AS (
        SELECT id FROM scoring_minutecounter WHERE minute < %(before)s LIMIT %(chunk)s FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM scoring_minutecounter m USING picked WHERE m.id = picked.id
        RETURNING m.video_id, m.event_type_id, m.minute, m.events, m.units, m.trend_units
    ), folded AS (
        INSERT INTO scoring_hourlycounter (video_id, event_type_id, hour, events, units, trend_units)
        SELECT video_id, event_type_id, date_trunc('hour', minute, 'UTC'), SUM(events), SUM(units), SUM(trend_units)
        FROM moved GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (video_id, event_type_id, hour) DO UPDATE
        SET events = scoring_hourlycounter.events + EXCLUDED.events,
            units = scoring_hourlycounter.units + EXCLUDED.units,
            trend_units = scoring_hourlycounter.trend_units + EXCLUDED.trend_units
    )
    SELECT count(*) FROM moved
"""


def counters_fold(*, chunk: int = FOLD_CHUNK, budget_s: float = FOLD_BUDGET_S) -> int:
    """Move the minute rows of every hour that has wholly left the hour window into the hourly rows.

    Returns the minute rows moved. No batch writes such rows any more: a batch writes minute rows
    only inside the window of the anchor it holds FOR SHARE, which no roll-over can move meanwhile,
    and the anchor only moves forward. Each chunk is one transaction, so any reader's snapshot
    holds every event once, in its minute row or in its hourly row; the roll-over reads the
    minutes leaving the window before they can be folded. A batch's hourly rows then get one
    write per (video, type) and hour instead of one per batch. Stops after about ``budget_s``
    seconds; the next run (beat, every minute) goes on where it stopped.
    """
    moved = 0
    deadline = time.monotonic() + budget_s
    while True:
        with transaction.atomic():
            before = hour_floor(hour_window_start(window_anchor_locked(exclusive=False)))
            with connection.cursor() as cur:
                cur.execute(FOLD_SQL, {"before": before, "chunk": chunk})
                row = cur.fetchone()
        done = int(row[0]) if row else 0
        moved += done
        if done < chunk or time.monotonic() > deadline:
            break
    if moved:
        logger.info("counters fold: %d minute rows moved into the hourly rows, before %s", moved, before.isoformat())
    return moved


def trending_rebase(*, now: datetime | None = None, min_age_s: int | None = None) -> bool:
    """Move each scope's forward-decay reference time forward so scores stay in float range.

    True when any scope moved. Each scope rebases in one call on its slot, every one to the same t0;
    the global lists' read compares categories caught between two of these calls on one scale
    (leaderboard.union).
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
