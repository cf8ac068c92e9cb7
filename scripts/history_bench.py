"""Times a video's rank-history read over a week of snapshots at the default interval and depth.

    python scripts/history_bench.py [--days 7] [--categories 8] [--runs 40] [--keep]

Starts its own servers (folder .devdata/history-bench), migrates, and writes `--days` of
snapshots of every ranking list (each window, globally and per category; the demo data has 8
categories) at RANKING_SNAPSHOT_INTERVAL_S, RANKING_SNAPSHOT_DEPTH positions each, in both
stored forms (the JSON row and the entry rows), with COPY. Then, for a video in every
snapshot, one in the middle of the lists and one never in the top, it times:

- ``GET /api/v1/rankings/videos/<id>/history/`` through Django's test client (wall clock, in this
  process: URL routing, middleware, the selector and the JSON body);
- ``rankings.selectors.video_rank_history``, the read behind it (wall clock);
- the entry-row query it runs (server time, EXPLAIN ANALYZE);
- for comparison, the same points read out of the snapshots' JSON, the design without entry rows.

Prints the medians and the tables' sizes. ``--keep`` leaves the servers running.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

POOL = 160  # videos competing for each list's top positions
SWAPS = 5  # neighbouring places traded between two snapshots


def _fill(cursor: object, *, days: int, categories: list[str], measured: tuple[int, int], now: datetime) -> int:
    """Snapshots of every list, oldest first; ``measured`` (top, middle) are placed in every list."""
    from django.conf import settings

    from leaderboard.windows import WINDOWS
    from rankings.models import RankingSnapshot, RankingSnapshotEntry

    interval = settings.RANKING_SNAPSHOT_INTERVAL_S
    depth = settings.RANKING_SNAPSHOT_DEPTH
    count = days * 86_400 // interval
    rng = random.Random(7)
    top, middle = measured
    written = 0
    for window in WINDOWS:
        for slug in ["", *categories]:
            pool = rng.sample(range(1_000, 2_000_000), POOL)
            pool[0], pool[depth // 2] = top, middle
            snaps, entries = io.StringIO(), io.StringIO()
            for k in range(count):
                for _ in range(SWAPS):
                    i = rng.randrange(1, POOL - 1)  # the top video keeps the lead
                    if depth // 2 not in (i, i + 1):  # and the middle one its place
                        pool[i], pool[i + 1] = pool[i + 1], pool[i]
                taken_at = (now - timedelta(seconds=interval * (count - 1 - k))).isoformat()
                ranked = [[vid, r + 1, float(100_000 - 37 * r - k % 11)] for r, vid in enumerate(pool[:depth])]
                snaps.write(f"{window}\t{slug}\t{taken_at}\t{json.dumps(ranked)}\n")
                entries.writelines(
                    f"{vid}\t{window}\t{slug}\t{taken_at}\t{rank}\t{score}\n" for vid, rank, score in ranked
                )
            snaps.seek(0)
            entries.seek(0)
            cursor.copy_from(  # type: ignore[attr-defined]
                snaps, RankingSnapshot._meta.db_table, columns=["window", "category_slug", "taken_at", "entries"]
            )
            cursor.copy_from(  # type: ignore[attr-defined]
                entries,
                RankingSnapshotEntry._meta.db_table,
                columns=["video_id", "window", "category_slug", "taken_at", "rank", "score"],
            )
            written += count
    return written


def _server_ms(cursor: object, sql: str, params: list[object]) -> float:
    cursor.execute("EXPLAIN (ANALYZE, TIMING OFF) " + sql, params)  # type: ignore[attr-defined]
    plan = "\n".join(row[0] for row in cursor.fetchall())  # type: ignore[attr-defined]
    match = re.search(r"Execution Time: ([\d.]+) ms", plan)
    assert match, plan
    return float(match[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--categories", type=int, default=8)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="leave the servers running")
    args = parser.parse_args(argv)

    import devstack

    stack = devstack.Stack(ROOT / ".devdata" / "history-bench")
    os.environ.update(stack.up())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ranking_site.settings.base")
    os.environ.setdefault("LOG_FORMAT", "plain")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from core.redis import redis_client
    from rankings import selectors
    from rankings.models import RankingSnapshot, RankingSnapshotEntry
    from videos.models import Category, Video

    try:
        call_command("migrate", verbosity=0)
        redis_client().flushdb()  # the metadata cache misses: the catalogue answers, as after a restart
        owner, _ = User.objects.get_or_create(username="history-bench")
        category, _ = Category.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        videos = [
            Video.objects.create(title=f"History bench {n}", category=category, owner=owner, duration_seconds=60)
            for n in range(3)
        ]
        top, middle, absent = (v.id for v in videos)
        slugs = ["bench", *(f"bench-{n}" for n in range(1, args.categories))]
        now = datetime.now(UTC)
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {RankingSnapshot._meta.db_table}, {RankingSnapshotEntry._meta.db_table}")
            written = _fill(cursor.cursor, days=args.days, categories=slugs, measured=(top, middle), now=now)
            cursor.execute(f"VACUUM ANALYZE {RankingSnapshot._meta.db_table}")
            cursor.execute(f"VACUUM ANALYZE {RankingSnapshotEntry._meta.db_table}")
        print(
            f"{written:,} snapshots ({written * settings.RANKING_SNAPSHOT_DEPTH:,} entries) over {args.days} days, "
            f"one every {settings.RANKING_SNAPSHOT_INTERVAL_S} s, {settings.RANKING_SNAPSHOT_DEPTH} positions, "
            f"written in {time.monotonic() - started:.0f} s"
        )
        with connection.cursor() as cursor:
            for table in (RankingSnapshot._meta.db_table, RankingSnapshotEntry._meta.db_table):
                cursor.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", [table])
                print(f"  {table}: {cursor.fetchone()[0]} with its indexes")

        since = now - timedelta(days=args.days)
        entry_sql = (
            f'SELECT taken_at, rank, score FROM {RankingSnapshotEntry._meta.db_table} WHERE video_id = %s AND "window" = '
            "'day' AND category_slug = '' AND taken_at >= %s"
        )
        json_sql = (
            f"SELECT s.taken_at, e.value FROM {RankingSnapshot._meta.db_table} s LEFT JOIN LATERAL ("
            "SELECT value FROM jsonb_array_elements(s.entries) WHERE (value ->> 0)::bigint = %s LIMIT 1) e ON true "
            "WHERE s.\"window\" = 'day' AND s.category_slug = '' AND s.taken_at >= %s ORDER BY s.taken_at"
        )
        print(f"\nhistory of one video in the global day list, {args.runs} runs each (median / p95, ms)")
        print(
            f"{'video':<22}{'points':>7}{'in top':>7}{'HTTP GET':>16}{'selector':>16}{'entry query':>16}{'JSON scan':>16}"
        )
        client = Client()
        for label, vid in (("in every snapshot", top), ("middle of the lists", middle), ("never in the top", absent)):
            http, wall, entry, scan = [], [], [], []
            history = None
            url = f"/api/v1/rankings/videos/{vid}/history/?since={since.isoformat().replace('+00:00', 'Z')}"
            for _ in range(args.runs):
                t = time.perf_counter()
                response = client.get(url)
                http.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, response.content[:300]
            for _ in range(args.runs):
                t = time.perf_counter()
                history = selectors.video_rank_history(video_id=vid, window="day", since=since)
                wall.append((time.perf_counter() - t) * 1000)
            with connection.cursor() as cursor:
                for _ in range(args.runs):
                    entry.append(_server_ms(cursor, entry_sql, [vid, since]))
                for _ in range(max(5, args.runs // 4)):  # slow: fewer runs
                    scan.append(_server_ms(cursor, json_sql, [vid, since]))
            assert history is not None
            ranked = sum(p.rank is not None for p in history.points)

            def fmt(xs: list[float]) -> str:
                return f"{statistics.median(xs):.2f} / {sorted(xs)[int(0.95 * (len(xs) - 1))]:.2f}"

            print(
                f"{label:<22}{len(history.points):>7}{ranked:>7}{fmt(http):>16}{fmt(wall):>16}{fmt(entry):>16}"
                f"{fmt(scan):>16}"
            )
    finally:
        if not args.keep:
            stack.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
