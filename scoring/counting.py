"""Counting one batch inside its transaction: parse, dedupe, add up, one upsert of the counters.

Returns the deltas the projection needs, so that Redis is written from what was
committed, never from the raw messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection

from core.bulk import array_param
from events.selectors import event_types_by_name
from events.wire import Parsed, WireError, WireEvent, dead_text, event_units, record_parse
from leaderboard.keys import scope_for
from leaderboard.windows import epoch, hour_floor, hour_window_start, minute_floor, window_mask
from scoring.partitions import seen_partition_ensure, seen_period
from videos.selectors import VideoFacts, video_facts

Message = Sequence[Any]  # [partition, offset, raw value]: a record of either shape (events.wire)
DeadRow = tuple[Any, Any, str, str, str]  # partition, offset, raw, reason, reason code (events.wire.WireError)


@dataclass
class Counted:
    deltas: dict[str, list[list[float | int]]] = field(default_factory=dict)  # scope -> deltas
    dead: list[DeadRow] = field(default_factory=list)
    received: int = 0  # events in the batch's records, dead ones included
    counted: int = 0
    request_ids: list[str] = field(default_factory=list)  # lets a log line follow an event from the API
    # Counted events by acceptance at the API, in epoch ms (events of one request share it):
    # the event-to-visible latency is observed from these once the deltas are applied.
    accepted: dict[int, int] = field(default_factory=dict)


def messages_count(*, messages: list[Message], anchor: datetime) -> Counted:
    """Inside the batch transaction: dedupe, upsert counters, return Redis deltas and dead letters."""
    types = event_types_by_name()
    out = Counted()
    parsed: list[tuple[Any, Any, Parsed, WireEvent]] = []
    for part, off, raw in messages:
        for entry in record_parse(str(raw)):
            event = entry[1]
            if isinstance(event, WireEvent) and event.type not in types:
                event = WireError(f"unknown event type {event.type!r}", "unknown_event_type")
            if isinstance(event, WireError):
                out.dead.append((part, off, dead_text(entry), str(event), event.code))
            else:
                parsed.append((part, off, entry, event))
    out.received = len(parsed) + len(out.dead)
    out.request_ids = sorted({e.request_id for *_, e in parsed if e.request_id})

    # Read after the caller took the window lock: a status or category change (which takes it
    # exclusively, scoring.moves) is then wholly before or wholly after this batch.
    facts = video_facts(video_ids={e.video_id for *_, e in parsed}) if parsed else {}
    events: list[WireEvent] = []
    for part, off, entry, event in parsed:
        if event.video_id not in facts:
            out.dead.append((part, off, dead_text(entry), f"unknown video {event.video_id}", "unknown_video"))
        else:
            events.append(event)

    # Keys travel as canonical text both ways: turning every returned uuid into a UUID
    # object (psycopg2's adapter) and back cost more than the rest of the dedupe.
    windows = {name: t.dedupe_window_seconds for name, t in types.items()}
    keys = [(e.event_id, e.dedupe_key(windows[e.type])) for e in events]
    fresh = _keys_claim(sorted({k for pair in keys for k in pair if k is not None}), anchor=anchor)

    type_ids = {name: t.id for name, t in types.items()}
    claimed: set[str] = set()
    # Per batch, few distinct values: the events of a request share their acceptance time, and
    # often their occurred_at (set by the API when the client sends none).
    minutes: dict[datetime, datetime] = {}
    accepted: dict[datetime, int] = defaultdict(int)
    # (video, type, minute) -> [events, units]
    counters: dict[tuple[int, int, datetime], list[float]] = defaultdict(lambda: [0, 0.0])
    for event, (event_key, user_key) in zip(events, keys, strict=True):
        ok = event_key in fresh and event_key not in claimed
        if ok and user_key is not None:
            ok = user_key in fresh and user_key not in claimed
        claimed.add(event_key)
        if user_key is not None and ok:
            claimed.add(user_key)
        if not ok:
            continue
        if event.accepted_at is not None:
            accepted[event.accepted_at] += 1
        minute = minutes.get(event.occurred_at)
        if minute is None:
            minute = minutes[event.occurred_at] = minute_floor(event.occurred_at)
        slot = counters[(event.video_id, type_ids[event.type], minute)]
        slot[0] += 1
        slot[1] += event_units(
            event_type=event.type,
            watch_seconds=event.watch_seconds,
            duration_seconds=facts[event.video_id].duration_seconds,
        )
    out.counted = sum(int(slot[0]) for slot in counters.values())
    for at, n in accepted.items():
        accepted_ms = round(at.timestamp() * 1000)
        out.accepted[accepted_ms] = out.accepted.get(accepted_ms, 0) + n
    if not counters:
        return out
    _counters_add(counters, hour_window_start(anchor))
    weights = {t.id: t.weight for t in types.values()}
    scores: dict[tuple[int, datetime], float] = defaultdict(float)
    for (vid, type_id, minute), (_, units) in counters.items():
        scores[(vid, minute)] += weights[type_id] * units
    out.deltas = scoped_deltas(
        ((vid, minute, score) for (vid, minute), score in scores.items()), facts=facts, anchor=anchor
    )
    return out


def _keys_claim(keys: list[str], *, anchor: datetime) -> set[str]:
    """Claim dedupe keys; returns those not claimed before (by any batch, ever inside retention).

    A key is claimed in the partition of the dedupe period holding the window
    anchor's day, unless an older partition already holds it. The caller holds the
    anchor FOR SHARE and the roll-over moves it (forward only) FOR UPDATE, so every
    batch in flight claims in the same partition, where the primary key makes
    concurrent claims of one key wait for each other; and a batch that sees a new
    period starts after every claim of the old one committed, so the probe of the
    older partitions sees them. Hence one row per key across all partitions.
    """
    if not keys:
        return set()
    period = seen_period(day=anchor.astimezone(UTC).date())
    seen_partition_ensure(period=period)
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO scoring_seenevent (key, period)
            SELECT k, %(period)s FROM unnest(%(keys)s::uuid[]) AS k
            WHERE NOT EXISTS (SELECT 1 FROM scoring_seenevent s WHERE s.key = k AND s.period < %(period)s)
            ON CONFLICT (key, period) DO NOTHING RETURNING key::text
            """,
            {"keys": array_param(keys), "period": period},
        )
        return {r[0] for r in cur.fetchall()}


def _counters_add(counters: dict[tuple[int, int, datetime], list[float]], window_start: datetime) -> None:
    """Upsert the minute counters (events inside the hour window or ahead of it) and the hourly
    counters (older events): each event in one row (scoring.models.MinuteCounter).

    One statement each, rows in key order (no deadlocks between concurrent batches). A row also
    adds units * 2^((minute - hour) / half-life), trending's minute resolution.
    """
    half_life = settings.RANKING_TRENDING_HALF_LIFE_S
    hourly: dict[tuple[int, int, datetime], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    minutes: list[tuple[tuple[int, int, datetime], list[float]]] = []
    trend: dict[datetime, tuple[datetime, float]] = {}  # minute -> (its hour, its factor); few a batch
    for (vid, type_id, minute), (events, units) in counters.items():
        cached = trend.get(minute)
        if cached is None:
            start = hour_floor(minute)
            cached = trend[minute] = (start, 2.0 ** ((minute - start).total_seconds() / half_life))
        hour, factor = cached
        if minute >= window_start:
            minutes.append(((vid, type_id, minute), [events, units, units * factor]))
            continue
        row = hourly[(vid, type_id, hour)]
        row[0] += events
        row[1] += units
        row[2] += units * factor
    with connection.cursor() as cur:
        for table, bucket, rows in (
            ("scoring_minutecounter", "minute", sorted(minutes)),
            ("scoring_hourlycounter", "hour", sorted(hourly.items())),
        ):
            if not rows:
                continue
            # The table and column names are the two constants above, never input.
            cur.execute(
                f"""
                INSERT INTO {table} (video_id, event_type_id, {bucket}, events, units, trend_units)
                SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::bigint[], %s::float8[],
                                     %s::float8[])
                ON CONFLICT (video_id, event_type_id, {bucket}) DO UPDATE
                SET events = {table}.events + EXCLUDED.events,
                    units = {table}.units + EXCLUDED.units,
                    trend_units = {table}.trend_units + EXCLUDED.trend_units
                """,
                [
                    array_param(k[0] for k, _ in rows),
                    array_param(k[1] for k, _ in rows),
                    array_param(k[2].isoformat() for k, _ in rows),
                    array_param(int(v[0]) for _, v in rows),
                    array_param(float(v[1]) for _, v in rows),
                    array_param(float(v[2]) for _, v in rows),
                ],
            )


def scoped_deltas(
    rows: Iterable[tuple[int, datetime, float]], *, facts: Mapping[int, VideoFacts], anchor: datetime
) -> dict[str, list[list[float | int]]]:
    """(video, minute bucket, score) of counted events -> deltas per scope (``scopes_route``)."""
    return scopes_route(((vid, minute, window_mask(minute, anchor), score) for vid, minute, score in rows), facts=facts)


def scopes_route(
    entries: Iterable[tuple[int, datetime, int, float]], *, facts: Mapping[int, VideoFacts]
) -> dict[str, list[list[float | int]]]:
    """(video, bucket, window mask, score) -> deltas per scope: a published video's go to its category's
    scope, whose lists the global ones are the union of (leaderboard.union); an unpublished video's go
    nowhere (its counters hold them for a republish)."""
    deltas: dict[str, list[list[float | int]]] = defaultdict(list)
    epochs: dict[datetime, int] = {}  # few distinct buckets per batch
    for vid, bucket, mask, score in entries:
        video = facts.get(vid)
        if score == 0 or video is None or not video.published:
            continue
        seconds = epochs.get(bucket)
        if seconds is None:
            seconds = epochs[bucket] = epoch(bucket)
        deltas[scope_for(video.category_id)].append([vid, seconds, mask, score])
    return dict(deltas)
