"""Counting one batch inside its transaction: parse, dedupe, add up, one upsert of the counters.

Returns the deltas the projection needs, so that Redis is written from what was
committed, never from the raw messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection

from events.selectors import event_types_by_name
from events.wire import WireError, WireEvent, event_units, wire_parse
from leaderboard.keys import scope_for
from leaderboard.windows import epoch, hour_floor, window_mask
from videos.selectors import VideoFacts, video_facts

Message = Sequence[Any]  # [partition, offset, raw value]
DeadRow = tuple[Any, Any, str, str]  # partition, offset, raw, reason


@dataclass
class Counted:
    deltas: dict[str, list[list[float | int]]] = field(default_factory=dict)  # scope -> deltas
    dead: list[DeadRow] = field(default_factory=list)
    counted: int = 0
    request_ids: list[str] = field(default_factory=list)  # lets a log line follow an event from the API


def messages_count(*, messages: list[Message], current_hour: datetime) -> Counted:
    """Inside the batch transaction: dedupe, upsert counters, return Redis deltas and dead letters."""
    types = event_types_by_name()
    out = Counted()
    parsed: list[tuple[Message, WireEvent]] = []
    for message in messages:
        part, off, raw = message
        try:
            event = wire_parse(str(raw))
            if event.type not in types:
                raise WireError(f"unknown event type {event.type!r}")
        except WireError as exc:
            out.dead.append((part, off, str(raw), str(exc)))
            continue
        parsed.append((message, event))
    out.request_ids = sorted({e.request_id for _, e in parsed if e.request_id})

    # Read after the caller took the window lock: a status or category change (which takes it
    # exclusively, scoring.moves) is then wholly before or wholly after this batch.
    facts = video_facts(video_ids={e.video_id for _, e in parsed}) if parsed else {}
    events: list[WireEvent] = []
    for (part, off, raw), event in parsed:
        if event.video_id not in facts:
            out.dead.append((part, off, str(raw), f"unknown video {event.video_id}"))
        else:
            events.append(event)

    # Keys travel as canonical text both ways: turning every returned uuid into a UUID
    # object (psycopg2's adapter) and back cost more than the rest of the dedupe.
    keys: list[tuple[str, str | None]] = []
    for e in events:
        bucket = e.dedupe_key(types[e.type].dedupe_window_seconds)
        keys.append((str(e.event_id), None if bucket is None else str(bucket)))
    fresh = _keys_claim(sorted({k for pair in keys for k in pair if k is not None}))

    claimed: set[str] = set()
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
        out.counted += 1
        slot = counters[(event.video_id, types[event.type].id, hour_floor(event.occurred_at))]
        slot[0] += 1
        slot[1] += event_units(
            event_type=event.type,
            watch_seconds=event.watch_seconds,
            duration_seconds=facts[event.video_id].duration_seconds,
        )
    if not counters:
        return out
    rows = sorted(counters.items())
    _counters_add(rows)
    weights = {t.id: t.weight for t in types.values()}
    scores: dict[tuple[int, datetime], float] = defaultdict(float)
    for (vid, type_id, hour), (_, units) in rows:
        scores[(vid, hour)] += weights[type_id] * units
    out.deltas = scoped_deltas(
        ((vid, hour, score) for (vid, hour), score in scores.items()), facts=facts, current_hour=current_hour
    )
    return out


def _keys_claim(keys: list[str]) -> set[str]:
    """Claim dedupe keys; returns those not claimed before (by any batch, ever inside retention)."""
    if not keys:
        return set()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO scoring_seenevent (key, seen_at)
            SELECT k, now() FROM unnest(%s::uuid[]) AS k
            ON CONFLICT (key) DO NOTHING RETURNING key::text
            """,
            [keys],
        )
        return {r[0] for r in cur.fetchall()}


def _counters_add(rows: list[tuple[tuple[int, int, datetime], list[float]]]) -> None:
    """One upsert for every (video, type, hour) of the batch, in key order (no deadlocks between batches)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO scoring_hourlycounter (video_id, event_type_id, hour, events, units)
            SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::bigint[], %s::float8[])
            ON CONFLICT (video_id, event_type_id, hour) DO UPDATE
            SET events = scoring_hourlycounter.events + EXCLUDED.events,
                units = scoring_hourlycounter.units + EXCLUDED.units
            """,
            [
                [k[0] for k, _ in rows],
                [k[1] for k, _ in rows],
                [k[2] for k, _ in rows],
                [int(v[0]) for _, v in rows],
                [float(v[1]) for _, v in rows],
            ],
        )


def scoped_deltas(
    rows: Iterable[tuple[int, datetime, float]], *, facts: Mapping[int, VideoFacts], current_hour: datetime
) -> dict[str, list[list[float | int]]]:
    """(video, hour bucket, score) -> deltas per scope: a published video's go to the global scope
    and its category's; an unpublished video's go nowhere (its counters hold them for a republish)."""
    deltas: dict[str, list[list[float | int]]] = defaultdict(list)
    for vid, hour, score in rows:
        video = facts.get(vid)
        if score == 0 or video is None or not video.published:
            continue
        delta: list[float | int] = [vid, epoch(hour), window_mask(hour, current_hour), score]
        deltas[scope_for(None)].append(delta)
        deltas[scope_for(video.category_id)].append(delta)
    return dict(deltas)
