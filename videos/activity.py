"""Hourly activity of videos: the score each UTC hour bucket added, from Postgres.

Feeds the sparklines of the live page and the activity chart of a video page.
Cost does not grow with the number of ranked videos: the query walks the
``(video, event_type, hour)`` unique index of ``events_hourlycounter`` once per
(requested video, event type), reading only the buckets inside the range.
Results are cached per video and range for ``CACHE_TTL_S`` so a page polled by
many viewers costs one query per cache period, not one per viewer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

MAX_IDS = 100
MAX_HOURS = 168
CACHE_TTL_S = 30
HOUR = timedelta(hours=1)
# Stored in the cache for a video that is not published, so a repeated request for it is
# answered from the cache too (None would be indistinguishable from a miss).
_NOT_PUBLISHED = "-"

_SERIES_SQL = """
WITH vids AS (
    SELECT id FROM videos_video WHERE id = ANY(%(ids)s) AND status = 'published'
)
SELECT vids.id, s.hour, s.score
FROM vids
LEFT JOIN LATERAL (
    SELECT c.hour, SUM(e.weight * c.units) AS score
    FROM events_eventtype e
    JOIN events_hourlycounter c
      ON c.video_id = vids.id AND c.event_type_id = e.id
     AND c.hour >= %(start)s AND c.hour < %(end)s
    GROUP BY c.hour
) s ON true
"""


def activity_range(*, hours: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """First bucket and end (exclusive) of the last ``hours`` buckets, the current hour included."""
    current = (now or timezone.now()).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return current - (hours - 1) * HOUR, current + HOUR


def _check(video_ids: Iterable[int], hours: int) -> list[int]:
    ids = sorted({int(v) for v in video_ids})
    if len(ids) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} video ids at once")
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours must be between 1 and {MAX_HOURS}")
    return ids


def video_activity_hourly(
    *, video_ids: Iterable[int], hours: int, now: datetime | None = None
) -> dict[int, list[float]]:
    """Per published video, its score (sum of weight x units) in each of the last ``hours``
    hour buckets, oldest first and the current hour last, zero where nothing happened.

    Unknown, hidden and removed videos are left out. One SQL query whatever the number of ids.
    Buckets after the current hour (events up to five minutes ahead) are not part of the series.
    """
    ids = _check(video_ids, hours)
    if not ids:
        return {}
    start, end = activity_range(hours=hours, now=now)
    with connection.cursor() as cur:
        cur.execute(_SERIES_SQL, {"ids": ids, "start": start, "end": end})
        rows = cur.fetchall()
    series: dict[int, list[float]] = {}
    for video_id, hour, score in rows:
        values = series.setdefault(int(video_id), [0.0] * hours)
        if hour is not None:
            values[int((hour - start) // HOUR)] = round(float(score), 6) + 0.0
    return series


def _cache_key(video_id: int, hours: int, start: datetime) -> str:
    # The first bucket is part of the key: when the hour turns, every entry is stale at once.
    return f"activity:v1:{hours}:{int(start.timestamp())}:{video_id}"


def video_activity_hourly_cached(
    *, video_ids: Iterable[int], hours: int, now: datetime | None = None
) -> dict[int, list[float]]:
    """``video_activity_hourly`` through the Django cache: at most one query for every id missing
    from it. The current hour's value may lag by up to ``CACHE_TTL_S`` seconds. When the cache is
    unreachable the answer still comes, straight from Postgres."""
    ids = _check(video_ids, hours)
    if not ids:
        return {}
    start, _ = activity_range(hours=hours, now=now)
    keys = {_cache_key(v, hours, start): v for v in ids}
    try:
        cached: dict[str, Any] = cache.get_many(list(keys))
    except RedisError as exc:
        logger.warning("activity cache unavailable: %s", exc)
        return video_activity_hourly(video_ids=ids, hours=hours, now=now)
    found = {keys[k]: v for k, v in cached.items()}
    missing = [v for v in ids if v not in found]
    if missing:
        fresh = video_activity_hourly(video_ids=missing, hours=hours, now=now)
        to_store = {_cache_key(v, hours, start): fresh.get(v, _NOT_PUBLISHED) for v in missing}
        try:
            cache.set_many(to_store, timeout=CACHE_TTL_S)
        except RedisError as exc:
            logger.warning("activity cache unavailable: %s", exc)
        found.update({v: fresh.get(v, _NOT_PUBLISHED) for v in missing})
    return {v: list(found[v]) for v in ids if found[v] != _NOT_PUBLISHED}
