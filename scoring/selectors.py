"""Reads of the counters and the ledger: score breakdowns, hourly activity, dead-letter and batch counts.

Raw SQL here names only scoring's own tables; event types (names, weights) come from
events.selectors and published videos from videos.selectors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from redis.exceptions import RedisError

from core.metrics import GaugeSource
from events.selectors import event_type_weights, event_type_weights_query
from leaderboard.windows import (
    RISING_PRIOR_PER_HOUR,
    WINDOWS,
    minute_floor,
    rising_denominator,
    rising_score,
    rising_week_average,
    window_start,
)
from scoring.models import Batch, DeadLetter
from videos.selectors import videos_published

logger = logging.getLogger(__name__)


def window_anchor() -> datetime:
    """The minute the sliding windows are anchored at (the current UTC minute before the first batch)."""
    # Raw: building the ORM's query cost several times the query itself, and every video standings
    # read asks.
    with connection.cursor() as cur:
        cur.execute("SELECT anchor FROM scoring_windowstate WHERE id = 1")
        row = cur.fetchone()
    return row[0] if row is not None else minute_floor(timezone.now())


def counts_by_hour(*, video_ids: Iterable[int] | None = None) -> dict[tuple[int, int, datetime], tuple[int, float]]:
    """Counted events and units per (video, event type id, hour): each hour's hourly row and minute
    rows together (scoring.models.MinuteCounter); ``video_ids`` limits it to those videos."""
    ids = None if video_ids is None else sorted(set(video_ids))
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT video_id, event_type_id, hour, SUM(events), SUM(units) FROM scoring_hourtotal
            WHERE %(ids)s::bigint[] IS NULL OR video_id = ANY(%(ids)s::bigint[])
            GROUP BY 1, 2, 3
            """,
            {"ids": ids},
        )
        return {(v, t, hour): (int(events), float(units)) for v, t, hour, events, units in cur.fetchall()}


def score_breakdown(*, video_id: int) -> dict[str, list[dict[str, Any]]]:
    """Per window, per event type: events, units, weight and the score they add (from Postgres).

    Rising's rows are the last 60 minutes per type, their units divided by the video's baseline
    (``rising_inputs`` gives the inputs).
    """
    anchor = window_anchor()
    hl = settings.RANKING_TRENDING_HALF_LIFE_S
    params = {
        "video": video_id,
        "hour": window_start("hour", anchor),
        "day": window_start("day", anchor),
        "week": window_start("week", anchor),
        "now": timezone.now().timestamp(),
        "hl": hl,
    }
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT c.event_type_id,
                   COALESCE(SUM(c.events) FILTER (WHERE c.hour >= %(day)s), 0),
                   COALESCE(SUM(c.units) FILTER (WHERE c.hour >= %(day)s), 0),
                   COALESCE(SUM(c.events) FILTER (WHERE c.hour >= %(week)s), 0),
                   COALESCE(SUM(c.units) FILTER (WHERE c.hour >= %(week)s), 0),
                   COALESCE(SUM(c.events), 0), COALESCE(SUM(c.units), 0),
                   COALESCE(SUM(c.events), 0),
                   COALESCE(SUM(c.trend_units * power(2::float8, (extract(epoch FROM c.hour) - %(now)s) / %(hl)s)), 0)
            FROM scoring_hourtotal c
            WHERE c.video_id = %(video)s
            GROUP BY c.event_type_id
            """,
            params,
        )
        by_type = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(
            """
            SELECT c.event_type_id, COALESCE(SUM(c.events), 0), COALESCE(SUM(c.units), 0)
            FROM scoring_minutecounter c
            WHERE c.video_id = %(video)s AND c.minute >= %(hour)s
            GROUP BY c.event_type_id
            """,
            params,
        )
        last_hour = {row[0]: row[1:] for row in cur.fetchall()}
    counted = ("day", "week", "all", "trending")
    weights = sorted(event_type_weights().items(), key=lambda kv: kv[1][0])
    values: dict[int, dict[str, tuple[float, float]]] = {}
    for type_id, _ in weights:
        hourly = by_type.get(type_id, (0,) * (2 * len(counted)))
        values[type_id] = {w: (hourly[2 * i], hourly[2 * i + 1]) for i, w in enumerate(counted)}
        values[type_id]["hour"] = last_hour.get(type_id, (0, 0))
    # Rising is linear in the last hour's score once the baseline is fixed: each type's units are
    # its last-hour units over the denominator, so the rows add up to the rising score too.
    week = sum(weight * float(values[t]["week"][1]) for t, (_, weight) in weights)
    denominator = rising_denominator(week)
    for type_id, _ in weights:
        events, units = values[type_id]["hour"]
        values[type_id]["rising"] = (events, float(units) / denominator)
    breakdown: dict[str, list[dict[str, Any]]] = {w: [] for w in WINDOWS}
    for type_id, (name, weight) in weights:
        for window in WINDOWS:
            events, units = int(values[type_id][window][0]), float(values[type_id][window][1])
            breakdown[window].append(
                {
                    "type": name,
                    "weight": weight,
                    "events": events,
                    "units": round(units, 6),
                    "score": round(weight * units, 6),
                }
            )
    return breakdown


def rising_inputs(*, breakdown: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """What a video's rising score is made of (leaderboard.windows.rising_score), from its breakdown."""
    hour = sum(item["score"] for item in breakdown["hour"])
    week = sum(item["score"] for item in breakdown["week"])
    return {
        "last_hour_score": round(hour, 6),
        "week_score": round(week, 6),
        "week_average_per_hour": round(rising_week_average(week), 6),
        "prior_per_hour": RISING_PRIOR_PER_HOUR,
        "rising_score": round(rising_score(hour, week), 6) + 0.0,
    }


# --- hourly activity ---------------------------------------------------------------------
# Feeds the sparklines of the live page and the activity chart of a video page. Cost does not
# grow with the number of ranked videos: the query walks the (video, event_type, hour) unique
# index of the counters, reading only the buckets inside the range. Results are cached per
# video and range for CACHE_TTL_S so a page polled by many viewers costs one query per cache
# period, not one per viewer.

ACTIVITY_MAX_IDS = 100
ACTIVITY_MAX_HOURS = 168
ACTIVITY_CACHE_TTL_S = 30
HOUR = timedelta(hours=1)
# Stored in the cache for a video that is not published, so a repeated request for it is
# answered from the cache too (None would be indistinguishable from a miss).
_NOT_PUBLISHED = "-"


def activity_range(*, hours: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """First bucket and end (exclusive) of the last ``hours`` buckets, the current hour included."""
    current = (now or timezone.now()).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return current - (hours - 1) * HOUR, current + HOUR


def _activity_check(video_ids: Iterable[int], hours: int) -> list[int]:
    ids = sorted({int(v) for v in video_ids})
    if len(ids) > ACTIVITY_MAX_IDS:
        raise ValueError(f"at most {ACTIVITY_MAX_IDS} video ids at once")
    if not 1 <= hours <= ACTIVITY_MAX_HOURS:
        raise ValueError(f"hours must be between 1 and {ACTIVITY_MAX_HOURS}")
    return ids


def video_activity_hourly(
    *, video_ids: Iterable[int], hours: int, now: datetime | None = None
) -> dict[int, list[float]]:
    """Per published video, its score (sum of weight x units) in each of the last ``hours``
    hour buckets, oldest first and the current hour last, zero where nothing happened.

    Unknown, hidden and removed videos are left out. One SQL query whatever the number of ids.
    Buckets after the current hour (events up to five minutes ahead) are not part of the series.
    """
    ids = _activity_check(video_ids, hours)
    if not ids:
        return {}
    start, end = activity_range(hours=hours, now=now)
    # The published videos and the weights as their apps select them, inside this one query: each
    # video gets a row for its zero series, then its buckets: an hour's hourly row and minute rows
    # (the view). Both bounds are whole hours, so they bound each row's own bucket too, which the
    # tables' indexes order.
    published, published_params = videos_published(video_ids=ids).values("id").query.sql_with_params()
    weights, weights_params = event_type_weights_query().query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute(
            f"""
            WITH p AS ({published}), w AS ({weights})
            SELECT p.id, NULL::timestamptz, NULL::float8 FROM p
            UNION ALL
            SELECT c.video_id, c.hour, SUM(w.weight * c.units)
            FROM scoring_hourtotal c JOIN w ON w.id = c.event_type_id
            WHERE c.video_id IN (SELECT id FROM p) AND c.hour >= %s AND c.hour < %s
              AND c.bucket >= %s AND c.bucket < %s
            GROUP BY c.video_id, c.hour
            """,
            [*published_params, *weights_params, start, end, start, end],
        )
        rows = cur.fetchall()
    series: dict[int, list[float]] = {}
    for video_id, hour, score in rows:
        values = series.setdefault(int(video_id), [0.0] * hours)
        if hour is not None:
            values[int((hour - start) // HOUR)] = round(float(score), 6) + 0.0
    return series


def _activity_cache_key(video_id: int, hours: int, start: datetime) -> str:
    # The first bucket is part of the key: when the hour turns, every entry is stale at once.
    return f"activity:v1:{hours}:{int(start.timestamp())}:{video_id}"


def video_activity_hourly_cached(
    *, video_ids: Iterable[int], hours: int, now: datetime | None = None
) -> dict[int, list[float]]:
    """``video_activity_hourly`` through the Django cache: at most one query for every id missing
    from it. The current hour's value may lag by up to ``ACTIVITY_CACHE_TTL_S`` seconds. When the
    cache is unreachable the answer still comes, straight from Postgres."""
    ids = _activity_check(video_ids, hours)
    if not ids:
        return {}
    start, _ = activity_range(hours=hours, now=now)
    keys = {_activity_cache_key(v, hours, start): v for v in ids}
    try:
        cached: dict[str, Any] = cache.get_many(list(keys))
    except RedisError as exc:
        logger.warning("activity cache unavailable: %s", exc)
        return video_activity_hourly(video_ids=ids, hours=hours, now=now)
    found = {keys[k]: v for k, v in cached.items()}
    missing = [v for v in ids if v not in found]
    if missing:
        fresh = video_activity_hourly(video_ids=missing, hours=hours, now=now)
        to_store = {_activity_cache_key(v, hours, start): fresh.get(v, _NOT_PUBLISHED) for v in missing}
        try:
            cache.set_many(to_store, timeout=ACTIVITY_CACHE_TTL_S)
        except RedisError as exc:
            logger.warning("activity cache unavailable: %s", exc)
        found.update({v: fresh.get(v, _NOT_PUBLISHED) for v in missing})
    return {v: list(found[v]) for v in ids if found[v] != _NOT_PUBLISHED}


# --- dead letters ------------------------------------------------------------------------


def dead_letter_counts() -> dict[str, int]:
    """Pending (not replayed) and replayed dead letters."""
    totals = DeadLetter.objects.aggregate(
        pending=Count("id", filter=Q(replayed_at__isnull=True)),
        replayed=Count("id", filter=Q(replayed_at__isnull=False)),
    )
    return {state: int(totals[state] or 0) for state in ("pending", "replayed")}


dead_letters_gauge = GaugeSource(
    name="ranking_dead_letters",
    help="Messages that can never be applied, stored in the dead-letter table (pending: not replayed).",
    label="state",
    read=dead_letter_counts,
)


# --- batches ---------------------------------------------------------------------------


def _batches_unprocessed() -> QuerySet[Batch]:
    """Stored and not yet counted, nor given up on: queued, being counted, or lost until the sweeper finds them."""
    return Batch.objects.filter(failed_at__isnull=True, processed_at__isnull=True)


def batches_unprocessed_count(*, limit: int) -> int:
    """The unprocessed batches counted up to ``limit``: the bridge asks while it is behind, every few
    milliseconds, and a backlog of thousands need not be walked to tell that it reached the limit."""
    return _batches_unprocessed()[:limit].count()


def batch_pending_counts() -> dict[str, int]:
    """Batches of the ledger not (yet) in the rankings, by state. Each count walks one
    partial index, so the cost follows the backlog, not the millions of applied batches."""
    waiting = Batch.objects.filter(failed_at__isnull=True)
    return {
        "unprocessed": _batches_unprocessed().count(),
        "unapplied": waiting.filter(processed_at__isnull=False, applied_at__isnull=True).count(),
        "failed": Batch.objects.filter(failed_at__isnull=False).count(),
    }


batches_pending_gauge = GaugeSource(
    name="ranking_batches_pending",
    help="Batches not yet in the rankings, by state: unprocessed (received, not yet counted), unapplied "
    "(counted, not yet applied to Redis), failed (a task gave up; waits for an operator in the admin).",
    label="state",
    read=batch_pending_counts,
)
