"""Writes to the rankings: metadata cache, deltas, roll-over, rebase, snapshots, rebuild.

The invariants these functions keep are described in docs/exactly-once.md.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from rankings import redis_keys as rk
from rankings.lua import APPLY, REBASE, REBUILD_META, REBUILD_SCORES, SWAP, SYNC_VIDEO, script
from rankings.models import RankingSnapshot
from rankings.selectors import video_rows
from rankings.windows import HOUR, epoch, hour_floor, leaving_buckets, window_start

logger = logging.getLogger(__name__)

APPLY_CHUNK = 5000
# Videos per rebuild script call: big enough that Python's per-command cost vanishes,
# small enough that one call holds Valkey for only a few milliseconds.
SCRIPT_CHUNK = 1000
EPS = {w: (1e-12 if w == "trending" else 1e-9) for w in rk.WINDOWS}
REBUILD_LOCK = 7_246_001  # pg advisory lock id: one rebuild at a time

Delta = Sequence[float | int]  # (video_id, hour_epoch, window mask, score)
Progress = Callable[[str, int, int | None], None]


class RankingsNotBuilt(Exception):
    """Redis has no built rankings (first start or wiped): a rebuild must run first."""


# --- metadata cache ------------------------------------------------------


def _video_fields(row: tuple) -> list[str]:
    vid, status, cat_id, title, slug, cat_name, owner, thumb, duration, published_at = row
    return [
        "id", str(vid), "status", status, "category_id", str(cat_id), "category", slug, "category_name", cat_name,
        "title", title, "owner", owner, "thumbnail_url", thumb or "", "duration_seconds", str(duration),
        "published_at", published_at.isoformat() if published_at else "",
    ]  # fmt: skip


def video_cache_sync(*, video_ids: Iterable[int]) -> int:
    """Write videos' metadata to Redis and move their scores to match their status."""
    ids = list(video_ids)
    if not ids:
        return 0
    sync = script(SYNC_VIDEO)
    client = rk.redis_client()
    pipe = client.pipeline(transaction=False)
    rows = list(video_rows(video_ids=ids))
    for row in rows:
        sync(args=[row[0], row[1], row[2], *_video_fields(row)], client=pipe)
    pipe.execute()
    found = {row[0] for row in rows}
    gone = [vid for vid in ids if vid not in found]
    if gone:  # deleted videos: drop them everywhere, like a removal
        pipe = client.pipeline(transaction=False)
        for vid in gone:
            sync(args=[vid, "removed", 0, "id", vid, "status", "removed"], client=pipe)
        pipe.execute()
    return len(rows)


def category_cache_sync(*, category_ids: Iterable[int] | None = None) -> None:
    sql = "SELECT id, slug, name, is_active FROM videos_category"
    params: list[Any] = []
    if category_ids is not None:
        sql += " WHERE id = ANY(%s)"
        params.append(list(category_ids))
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    client = rk.redis_client()
    slugs_by_id: dict[int, list[bytes]] = defaultdict(list)
    for old_slug, old_id in client.hgetall(rk.CATS).items():
        slugs_by_id[int(old_id)].append(old_slug)
    pipe = client.pipeline(transaction=True)
    for cid, slug, name, active in rows:
        # A renamed slug must not keep answering: drop any stale slug pointing here.
        for old_slug in slugs_by_id[cid]:
            if old_slug.decode() != slug:
                pipe.hdel(rk.CATS, old_slug)
        pipe.hset(rk.CATS, slug, cid)
        pipe.hset(rk.category_key(cid), mapping={"id": cid, "slug": slug, "name": name, "active": int(active)})
    pipe.execute()


# --- deltas ---------------------------------------------------------------


def deltas_apply(*, batch_id: str, deltas: Sequence[Delta]) -> int:
    """Apply a batch's deltas once per rankings generation (idempotent)."""
    apply = script(APPLY)
    applied = 0
    chunks = [deltas[i : i + APPLY_CHUNK] for i in range(0, len(deltas), APPLY_CHUNK)] or [[]]
    for index, chunk in enumerate(chunks):
        args: list[Any] = [batch_id if len(chunks) == 1 else f"{batch_id}:{index}"]
        for entry in chunk:
            args.extend(entry)
        result = int(apply(args=args))
        if result == -1:
            raise RankingsNotBuilt
        applied += max(result, 0)
    return applied


def batch_mark_applied(*, batch_id: str) -> None:
    with connection.cursor() as cur:
        cur.execute("UPDATE events_batch SET applied_at = now() WHERE id = %s AND applied_at IS NULL", [batch_id])


def current_xid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_current_xact_id()::text::bigint")
        return int(cur.fetchone()[0])


def window_hour_locked(*, exclusive: bool) -> datetime:
    """The anchored current hour, locked for the rest of the transaction."""
    lock = "FOR UPDATE" if exclusive else "FOR SHARE"
    with connection.cursor() as cur:
        cur.execute(f"SELECT current_hour FROM rankings_windowstate WHERE id = 1 {lock}")
        row = cur.fetchone()
    if row is None:
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO rankings_windowstate (id, current_hour) VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
                [hour_floor(timezone.now())],
            )
        return window_hour_locked(exclusive=exclusive)
    return row[0]


# --- periodic work ----------------------------------------------------------


def window_rollover(*, now: datetime | None = None) -> int:
    """Move the windows to the current hour; subtract the buckets that leave them.

    Returns how many hours the anchor moved. The subtraction is stored as a
    ledger batch in the same transaction that moves the anchor, then applied
    like any other batch, so a crash in between is repaired by the sweeper.
    """
    from events.models import Batch

    target = hour_floor(now or timezone.now())
    with transaction.atomic():
        current = window_hour_locked(exclusive=True)
        if current >= target:
            return 0
        masks: dict[tuple[int, int], int] = defaultdict(int)
        scores: dict[tuple[int, int], float] = {}
        with connection.cursor() as cur:
            for window, (lo, hi) in leaving_buckets(current, target).items():
                cur.execute(
                    """
                    SELECT c.video_id, c.hour, SUM(e.weight * c.units)
                    FROM events_hourlycounter c JOIN events_eventtype e ON e.id = c.event_type_id
                    WHERE c.hour >= %s AND c.hour < %s
                    GROUP BY c.video_id, c.hour
                    """,
                    [lo, hi],
                )
                for vid, hour, score in cur.fetchall():
                    key = (vid, epoch(hour))
                    masks[key] |= rk.WINDOW_BITS[window]
                    scores[key] = score
            cur.execute("UPDATE rankings_windowstate SET current_hour = %s WHERE id = 1", [target])
        deltas = [[vid, hour, masks[(vid, hour)], -scores[(vid, hour)]] for (vid, hour) in masks]
        batch = Batch.objects.create(
            source=Batch.Source.ROLLOVER, processed_at=timezone.now(), deltas=deltas, xid=current_xid()
        )
    moved = int((target - current) / HOUR)
    logger.info("window roll-over to %s: %d hour(s), %d bucket deltas", target.isoformat(), moved, len(deltas))
    try:
        deltas_apply(batch_id=str(batch.id), deltas=deltas)
        batch_mark_applied(batch_id=str(batch.id))
    except RankingsNotBuilt:
        logger.warning("rankings not built; roll-over batch %s left for the rebuild", batch.id)
    return moved


def trending_rebase(*, now: datetime | None = None, min_age_s: int | None = None) -> bool:
    """Move the forward-decay reference time forward so scores stay in float range."""
    client = rk.redis_client()
    t0 = client.hget(rk.TREND, "t0")
    if t0 is None:
        return False
    new_t0 = epoch(hour_floor(now or timezone.now()))
    min_age = settings.RANKING_TRENDING_REBASE_S if min_age_s is None else min_age_s
    if new_t0 - float(t0) < min_age:
        return False
    return int(script(REBASE)(args=[new_t0])) == 1


def snapshot_take(*, now: datetime | None = None) -> int:
    """Record each ranking's top positions (Postgres) and cache them for reads (Redis)."""
    from rankings.selectors import competition_ranks, ranking_scopes

    taken_at = now or timezone.now()
    client = rk.redis_client()
    depth = settings.RANKING_SNAPSHOT_DEPTH
    scopes = ranking_scopes()
    pipe = client.pipeline(transaction=False)
    keys = [(w, cid, slug) for w in rk.WINDOWS for cid, slug in scopes]
    for window, cid, _ in keys:
        pipe.zrange(rk.ranking_key(window, cid), 0, depth - 1, withscores=True)
    results = pipe.execute()
    snapshots = []
    pipe = client.pipeline(transaction=True)
    for (window, cid, slug), rows in zip(keys, results, strict=True):
        ranked = competition_ranks([(rk.video_id_of(m), -s) for m, s in rows])
        snapshots.append(RankingSnapshot(window=window, category_slug=slug or "", taken_at=taken_at, entries=ranked))
        skey = rk.snapshot_key(window, cid)
        pipe.delete(skey)
        mapping: dict[str, str] = {str(vid): str(rank) for vid, rank, _ in ranked}
        mapping["_taken_at"] = taken_at.isoformat()
        pipe.hset(skey, mapping=mapping)
    with transaction.atomic():
        RankingSnapshot.objects.bulk_create(snapshots)
        RankingSnapshot.objects.filter(taken_at__lt=taken_at - settings.RANKING_SNAPSHOT_RETENTION).delete()
    pipe.execute()
    return len(snapshots)


def snapshot_cache_restore() -> None:
    """After a rebuild, put the latest snapshot of each ranking back into Redis."""
    from rankings.selectors import ranking_scopes

    client = rk.redis_client()
    pipe = client.pipeline(transaction=False)
    for cid, slug in ranking_scopes():
        for window in rk.WINDOWS:
            snap = RankingSnapshot.objects.filter(window=window, category_slug=slug or "").order_by("-taken_at").first()
            if snap is None:
                continue
            mapping = {str(vid): str(rank) for vid, rank, _ in snap.entries}
            mapping["_taken_at"] = snap.taken_at.isoformat()
            pipe.delete(rk.snapshot_key(window, cid))
            pipe.hset(rk.snapshot_key(window, cid), mapping=mapping)
    pipe.execute()


# --- rebuild ------------------------------------------------------------------


@dataclass
class RebuildResult:
    built: bool
    videos: int = 0
    ranked: dict[str, int] = field(default_factory=dict)
    replayed_batches: int = 0
    seconds: float = 0.0
    generation: int = 0


SCORES_SQL = """
    SELECT c.video_id, v.status, v.category_id,
           SUM(e.weight * c.units) FILTER (WHERE c.hour >= %(hour)s),
           SUM(e.weight * c.units) FILTER (WHERE c.hour >= %(day)s),
           SUM(e.weight * c.units) FILTER (WHERE c.hour >= %(week)s),
           SUM(e.weight * c.units),
           SUM(e.weight * c.units * power(2::float8, (extract(epoch FROM c.hour) - %(t0)s) / %(hl)s))
    FROM events_hourlycounter c
    JOIN events_eventtype e ON e.id = c.event_type_id
    JOIN videos_video v ON v.id = c.video_id
    GROUP BY c.video_id, v.status, v.category_id
"""


def window_scores_from_counters(*, current_hour: datetime, t0: int, hl: int) -> dict[str, Any]:
    return {
        "hour": window_start("hour", current_hour),
        "day": window_start("day", current_hour),
        "week": window_start("week", current_hour),
        "t0": t0,
        "hl": hl,
    }


def _noop_progress(stage: str, done: int, total: int | None) -> None:
    return None


class _Sender:
    """Executes filled pipelines on one background thread, at most two waiting.

    The rebuild alternates between reading Postgres, building the next chunk in
    Python and Valkey running the previous one; overlapping them keeps both cores
    busy. Errors surface on the next send or at close.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rebuild-sender", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (pipe := self.queue.get()) is not None:
            if self.error is None:
                try:
                    pipe.execute()
                except BaseException as exc:  # re-raised in the building thread
                    self.error = exc
            self.queue.task_done()
        self.queue.task_done()

    def send(self, pipe: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(pipe)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def rankings_rebuild(*, progress: Progress | None = None, chunk: int = 20_000) -> RebuildResult:
    """Rebuild every ranking and the metadata cache from Postgres; swap atomically.

    Readers keep the old lists until the swap. Batches committed after the
    build's snapshot are replayed onto the new lists; batches inside it are
    marked applied for the new generation so they never count twice.
    """
    report = progress or _noop_progress
    started = time.monotonic()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [REBUILD_LOCK])
        if not cur.fetchone()[0]:
            logger.info("rebuild already running elsewhere; skipped")
            return RebuildResult(built=False)
    try:
        return _rebuild_locked(report, chunk, started)
    finally:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [REBUILD_LOCK])


def _rebuild_locked(report: Progress, chunk: int, started: float) -> RebuildResult:
    client = rk.redis_client()
    generation = time.time_ns() // 1_000_000
    tmp = f"{rk.PREFIX}tmp:{generation}:"
    hl = settings.RANKING_TRENDING_HALF_LIFE_S
    t0 = epoch(hour_floor(timezone.now()))
    result = RebuildResult(built=True, generation=generation)
    category_cache_sync()
    # One snapshot for everything read below. Inside an outer transaction (tests
    # wrap each test in one) the level is already fixed and nothing runs concurrently.
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cur:
            if own_transaction:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SELECT pg_current_snapshot()::text, now()")
            snapshot, snapshot_time = cur.fetchone()
            cur.execute("SELECT current_hour FROM rankings_windowstate WHERE id = 1")
            row = cur.fetchone()
            current_hour = row[0] if row else hour_floor(timezone.now())
            cur.execute("SELECT count(*) FROM videos_video")
            total_videos = int(cur.fetchone()[0])
            cur.execute("SELECT id::text FROM events_batch WHERE processed_at IS NOT NULL AND applied_at IS NULL")
            counted_batches = [r[0] for r in cur.fetchall()]

        report("metadata", 0, total_videos)
        done = 0
        meta = script(REBUILD_META)
        names = ""  # the JSON list of hash field names, from the first row
        sender = _Sender()
        pipe = client.pipeline(transaction=False)
        rows_meta: list[list[str]] = []
        for row in video_rows(video_ids=None):
            fields = _video_fields(row)
            if not names:
                names = json.dumps(fields[0::2])
            rows_meta.append([str(row[0]), *fields[1::2]])
            done += 1
            if len(rows_meta) >= SCRIPT_CHUNK:
                meta(args=[names, json.dumps(rows_meta, ensure_ascii=False)], client=pipe)
                rows_meta = []
            if done % chunk == 0:
                sender.send(pipe)
                pipe = client.pipeline(transaction=False)
                report("metadata", done, total_videos)
        if rows_meta:
            meta(args=[names, json.dumps(rows_meta, ensure_ascii=False)], client=pipe)
        sender.send(pipe)
        sender.close()
        report("metadata", done, total_videos)
        result.videos = done

        params = window_scores_from_counters(current_hour=current_hour, t0=t0, hl=hl)
        ranked: dict[str, int] = defaultdict(int)
        shadows: set[int] = set()
        live_keys: set[str] = set()
        report("scores", 0, total_videos)
        done = 0
        with connection.chunked_cursor() as cur:
            cur.execute(SCORES_SQL, params)
            fill = script(REBUILD_SCORES)
            sender = _Sender()
            while rows := cur.fetchmany(chunk):
                pipe = client.pipeline(transaction=False)
                adds: list[list[Any]] = []
                shadow_rows: list[list[Any]] = []
                for vid, status, cid, *values in rows:
                    entry: list[Any] = [rk.member(vid), str(cid)]
                    for window, value in zip(rk.WINDOWS, values, strict=True):
                        if value is None or abs(value) <= EPS[window]:
                            continue
                        if status == "published":
                            entry.append([window, -float(value)])
                            live_keys.add(rk.ranking_key(window))
                            live_keys.add(rk.ranking_key(window, cid))
                            ranked[window] += 1
                        else:
                            shadow_rows.append([str(vid), window, repr(float(value))])
                            shadows.add(vid)
                    if len(entry) > 2:
                        adds.append(entry)
                    if len(adds) >= SCRIPT_CHUNK:
                        fill(args=[tmp, json.dumps(adds), json.dumps(shadow_rows)], client=pipe)
                        adds, shadow_rows = [], []
                if adds or shadow_rows:
                    fill(args=[tmp, json.dumps(adds), json.dumps(shadow_rows)], client=pipe)
                sender.send(pipe)
                done += len(rows)
                report("scores", done, total_videos)
            sender.close()

    renames = [[tmp + key, key] for key in sorted(live_keys)]
    renames += [[tmp + rk.shadow_key(vid), rk.shadow_key(vid)] for vid in sorted(shadows)]
    payload = {"gen": generation, "t0": t0, "hl": hl, "renames": renames, "shadows": sorted(shadows)}
    payload["batches"] = counted_batches
    script(SWAP)(args=[json.dumps(payload)])
    result.ranked = dict(ranked)

    # Batches committed after the snapshot were not in the counters we read.
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT id::text, deltas FROM events_batch
            WHERE processed_at IS NOT NULL AND xid >= pg_snapshot_xmin(%s::pg_snapshot)::text::bigint
              AND NOT pg_visible_in_snapshot(xid::text::xid8, %s::pg_snapshot)
              AND xid::text::xid8 IS DISTINCT FROM pg_current_xact_id_if_assigned()
            """,
            [snapshot, snapshot],
        )
        late = cur.fetchall()
    for batch_id, deltas in late:
        # Raw cursors return jsonb as text (Django leaves decoding to the field).
        deltas_apply(batch_id=batch_id, deltas=json.loads(deltas) if deltas else [])
        batch_mark_applied(batch_id=batch_id)
    result.replayed_batches = len(late)

    # Status or category changes committed during the build: make Redis agree again.
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM videos_video WHERE updated_at >= %s - interval '1 minute'", [snapshot_time])
        changed = [r[0] for r in cur.fetchall()]
    video_cache_sync(video_ids=changed)
    snapshot_cache_restore()
    result.seconds = time.monotonic() - started
    report("done", result.videos, result.videos)
    logger.info(
        "rankings rebuilt: gen %s, %d videos, ranked %s, %d late batches replayed, %.1fs",
        generation, result.videos, result.ranked, result.replayed_batches, result.seconds,
    )  # fmt: skip
    return result


def rankings_ensure_built() -> bool:
    """Rebuild when Redis has no rankings (first start, or wiped). True if a rebuild ran."""
    if rk.redis_client().exists(rk.READY):
        return False
    return rankings_rebuild().built
