"""Rebuild every ranking and the metadata cache from Postgres, swapped in atomically.

Readers keep the old lists until the swap. Batches committed after the build's
snapshot are replayed onto the new lists; batches inside it are marked applied
for the new generation so they never count twice (docs/exactly-once.md).
"""

from __future__ import annotations

import json
import logging
import time
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.progress import Progress, progress_none
from leaderboard import store
from leaderboard.keys import scope_for
from leaderboard.windows import EPS, epoch, hour_floor, rising_score, window_start
from scoring import signals
from scoring.buckets import weight_arrays
from scoring.catalog_sync import category_cache_sync, video_cache_sync, video_meta
from scoring.models import Batch
from scoring.selectors import window_anchor
from videos.selectors import category_rows, video_count, video_ids_changed_since, video_rows

logger = logging.getLogger(__name__)

REBUILD_LOCK = 7_246_001  # pg advisory lock id: one rebuild at a time
PUBLISHED = "published"

# Score of every video in the windows kept in counters (hour, day, week, all, trending: the order of
# leaderboard.windows.WINDOWS), by video id, from the counters and the given weights. The hour
# window sums minute buckets; trending decays each hour's minute-exact trending units. An hour's
# counts are its hourly row and its minute rows (the view scoring_hourtotal).
SCORES_SQL = """
    WITH w AS (SELECT * FROM unnest(%(type_ids)s::bigint[], %(weights)s::float8[]) AS w(id, weight)),
    h AS (
        SELECT c.video_id,
               SUM(w.weight * c.units) FILTER (WHERE c.hour >= %(day)s) AS day,
               SUM(w.weight * c.units) FILTER (WHERE c.hour >= %(week)s) AS week,
               SUM(w.weight * c.units) AS total,
               SUM(w.weight * c.trend_units * power(2::float8, (extract(epoch FROM c.hour) - %(t0)s) / %(hl)s))
                   AS trending
        FROM scoring_hourtotal c JOIN w ON w.id = c.event_type_id
        WHERE %(ids)s::bigint[] IS NULL OR c.video_id = ANY(%(ids)s::bigint[])
        GROUP BY c.video_id
    ),
    m AS (
        SELECT c.video_id, SUM(w.weight * c.units) AS hour
        FROM scoring_minutecounter c JOIN w ON w.id = c.event_type_id
        WHERE c.minute >= %(hour)s AND (%(ids)s::bigint[] IS NULL OR c.video_id = ANY(%(ids)s::bigint[]))
        GROUP BY c.video_id
    )
    SELECT h.video_id, m.hour, h.day, h.week, h.total, h.trending
    FROM h LEFT JOIN m USING (video_id)
    ORDER BY h.video_id
"""


def scores_params(*, anchor: datetime, t0: int, hl: int, video_ids: list[int] | None = None) -> dict[str, Any]:
    """Parameters of SCORES_SQL; ``video_ids`` limits it to those videos (None: every video)."""
    type_ids, weights = weight_arrays()
    return {
        "hour": window_start("hour", anchor),
        "day": window_start("day", anchor),
        "week": window_start("week", anchor),
        "t0": t0,
        "hl": hl,
        "type_ids": type_ids,
        "weights": weights,
        "ids": video_ids,
    }


def scores_from_counters(*, params: dict[str, Any], chunk: int = 20_000) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of (video id, score per window in WINDOWS order, None where it has none) rows, by video id."""
    with connection.chunked_cursor() as cur:
        cur.execute(SCORES_SQL, params)
        while rows := cur.fetchmany(chunk):
            yield [(*row, _rising(row[1], row[3])) for row in rows]


def _rising(hour: float | None, week: float | None) -> float | None:
    if hour is None or abs(hour) <= EPS["hour"]:
        return None
    return rising_score(hour, week or 0.0)


@dataclass
class RebuildResult:
    built: bool
    videos: int = 0
    ranked: dict[str, int] = field(default_factory=dict)
    replayed_batches: int = 0
    seconds: float = 0.0
    generation: int = 0
    scopes: list[str] = field(default_factory=list)


class _Catalogue:
    """Status and category of every video, compact (about 17 bytes a video), looked up by id."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.categories = array("q")
        self.published = bytearray()

    def add(self, video_id: int, status: str, category_id: int) -> None:
        self.ids.append(video_id)  # video_rows streams by id: the array stays sorted
        self.categories.append(category_id)
        self.published.append(status == PUBLISHED)

    def get(self, video_id: int) -> tuple[bool, int] | None:
        i = bisect_left(self.ids, video_id)
        if i == len(self.ids) or self.ids[i] != video_id:
            return None
        return bool(self.published[i]), self.categories[i]


def all_scopes() -> list[str]:
    return [scope_for(None), *(scope_for(cid) for cid, *_ in category_rows())]


def rankings_rebuild(
    *, progress: Progress | None = None, chunk: int = 20_000, scopes: Collection[str] | None = None
) -> RebuildResult:
    """Rebuild the rankings and metadata of ``scopes`` (None: every scope) from Postgres.

    Each scope is swapped in atomically on its own slot; scopes not named are not touched,
    so losing one shard rebuilds only the scopes it held.
    """
    report = progress or progress_none
    started = time.monotonic()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [REBUILD_LOCK])
        if not cur.fetchone()[0]:
            logger.info("rebuild already running elsewhere; skipped")
            return RebuildResult(built=False)
    try:
        result = _rebuild_locked(report, chunk, started, set(scopes) if scopes is not None else set(all_scopes()))
    finally:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [REBUILD_LOCK])
    signals.rankings_rebuilt.send(sender=RebuildResult, result=result)
    return result


def _rebuild_locked(report: Progress, chunk: int, started: float, scopes: set[str]) -> RebuildResult:
    generation = time.time_ns() // 1_000_000
    hl = settings.RANKING_TRENDING_HALF_LIFE_S
    t0 = epoch(hour_floor(timezone.now()))
    result = RebuildResult(built=True, generation=generation, scopes=sorted(scopes))
    category_cache_sync()
    # One snapshot for everything read below. Inside an outer transaction (tests
    # wrap each test in one) the level is already fixed and nothing runs concurrently.
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(), store.Build(generation=generation, scopes=scopes) as build:
        with connection.cursor() as cur:
            if own_transaction:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SELECT pg_current_snapshot()::text, now()")
            snapshot, snapshot_time = cur.fetchone()
        anchor = window_anchor()
        total_videos = video_count()
        counted_batches = [
            str(b)
            for b in Batch.objects.filter(processed_at__isnull=False, applied_at__isnull=True).values_list(
                "id", flat=True
            )
        ]

        report("metadata", 0, total_videos)
        catalogue = _Catalogue()
        for row in video_rows(video_ids=None):
            build.video_add(video_meta(row))
            catalogue.add(row[0], row[1], row[2])
            if len(catalogue.ids) % chunk == 0:
                build.flush()
                report("metadata", len(catalogue.ids), total_videos)
        build.flush()
        result.videos = len(catalogue.ids)
        report("metadata", result.videos, total_videos)

        report("scores", 0, total_videos)
        done = 0
        for rows in scores_from_counters(params=scores_params(anchor=anchor, t0=t0, hl=hl), chunk=chunk):
            for vid, *values in rows:
                known = catalogue.get(vid)
                if known is not None and known[0]:  # only published videos are ranked
                    build.scores_add(video_id=vid, category_id=known[1], values=values)
            build.flush()
            done += len(rows)
            report("scores", done, total_videos)

    build.swap(t0=t0, half_life_s=hl, applied_batches=counted_batches)
    result.ranked = dict(build.ranked)

    # Batches committed after the snapshot were not in the counters we read.
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT id::text, deltas FROM scoring_batch
            WHERE processed_at IS NOT NULL AND xid >= pg_snapshot_xmin(%s::pg_snapshot)::text::bigint
              AND NOT pg_visible_in_snapshot(xid::text::xid8, %s::pg_snapshot)
              AND xid::text::xid8 IS DISTINCT FROM pg_current_xact_id_if_assigned()
            """,
            [snapshot, snapshot],
        )
        late = cur.fetchall()
    for batch_id, deltas in late:
        # Raw cursors return jsonb as text (Django leaves decoding to the field). Only the rebuilt
        # scopes take them here; the others got them, or will, from the normal apply.
        decoded = json.loads(deltas) if deltas else {}
        store.deltas_apply(batch_id=batch_id, deltas={s: d for s, d in decoded.items() if s in scopes})
    result.replayed_batches = len(late)

    # Status or category changes committed during the build: make Redis agree again.
    video_cache_sync(video_ids=video_ids_changed_since(moment=snapshot_time - timedelta(minutes=1)))
    result.seconds = time.monotonic() - started
    report("done", result.videos, result.videos)
    logger.info(
        "rankings rebuilt: gen %s, scopes %s, %d videos, ranked %s, %d late batches replayed, %.1fs",
        generation, ", ".join(result.scopes), result.videos, result.ranked, result.replayed_batches, result.seconds,
    )  # fmt: skip
    return result


def rankings_ensure_built() -> bool:
    """Rebuild the scopes Redis lost (first start, a wiped shard). True if a rebuild ran."""
    missing = store.scopes_not_built(scopes=all_scopes())
    if not missing:
        return False
    logger.warning("rankings not built in %d scope(s): %s; rebuilding them", len(missing), ", ".join(missing))
    return rankings_rebuild(scopes=missing).built
