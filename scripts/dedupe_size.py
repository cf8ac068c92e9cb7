"""Disk cost and claim time of the dedupe keys and the batch ledger, in their partitions.

    python scripts/dedupe_size.py                      # 2 periods of 1,000,000 keys, 200,000 events
    python scripts/dedupe_size.py --keys 2000000 --events 1000000

Starts its own PostgreSQL (folder .devdata/dedupe-size) and, on an empty database:

1. keys: claims ``--keys`` random keys through the worker's claim function in
   chunks of 1,000, in the previous dedupe period (nothing older to probe), then
   as many in the current one (each claim probes the previous partition, the
   steady state); reports table + index bytes per million keys and the time per
   chunk. Beside it, the single-table layout the partitions replaced (uuid
   primary key, claim time and its index), loaded with the same keys;
2. probe cost: the claim time with 8, 4, 2, 1 and 0 older partitions live (of
   ``--probe-keys`` keys each), which is what the period width trades;
3. ledger: ``--events`` events through ``batch_store`` + ``batch_process``
   (batches of 500, as the bridge stores them; Redis not involved), then the
   ledger's bytes per million events: the files as written (with the space of
   rows' earlier versions, which vacuum lets later rows reuse) and the live rows
   alone (after VACUUM FULL).

Sizes are ``pg_total_relation_size`` summed over the partitions. Times are wall
clock of the claim statement against the local server (fsync off): compare the
rows with each other, not with a production disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1000
BATCH = 500


def _sizes(cur: Any, parent: str) -> dict[str, int]:
    cur.execute(
        "SELECT coalesce(sum(pg_relation_size(inhrelid)), 0), coalesce(sum(pg_indexes_size(inhrelid)), 0), "
        "coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits WHERE inhparent = %s::regclass",
        [parent],
    )
    heap, index, total = cur.fetchone()
    return {"heap": int(heap), "index": int(index), "total": int(total)}


def _per_million(size: dict[str, int], count: int) -> dict[str, float]:
    """MiB per million rows (keys or events), and bytes per row, of each part."""
    out = {f"{k} MiB": round(v * 1_000_000 / count / 2**20, 1) for k, v in size.items()}
    return out | {"bytes each": round(size["total"] / count, 1)}


def _reset() -> None:
    """Empty dedupe keys, ledger and counters, and drop their partitions (an earlier run's)."""
    from django.db import connection

    from scoring import partitions

    with connection.cursor() as cur:
        for parent in (partitions.SEEN_TABLE, partitions.BATCH_TABLE):
            for name, _ in partitions._partitions(parent):
                cur.execute(f"DROP TABLE {name}")
        cur.execute("TRUNCATE scoring_hourlycounter, scoring_minutecounter, scoring_deadletter")
    partitions.partitions_cache_clear()


def keys_measure(*, keys: int) -> dict[str, Any]:
    from django.db import connection, transaction

    from scoring.counting import _keys_claim  # the worker's claim, called as messages_count calls it
    from scoring.models import WindowState
    from scoring.partitions import SEEN_PERIOD_DAYS, seen_period

    now = datetime.now(UTC)
    current = datetime.combine(seen_period(day=now.date()), datetime.min.time(), tzinfo=UTC)
    previous = current - timedelta(days=SEEN_PERIOD_DAYS)
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS seen_single")
        cur.execute("CREATE TABLE seen_single (key uuid PRIMARY KEY, seen_at timestamptz NOT NULL)")
        cur.execute("CREATE INDEX ON seen_single (seen_at)")

    def claim(anchor: datetime, chunk: list[str]) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            _keys_claim(chunk, anchor=anchor)
        return time.perf_counter() - started

    def single(chunk: list[str]) -> float:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "INSERT INTO seen_single (key, seen_at) SELECT k, now() FROM unnest(%s::uuid[]) AS k "
                "ON CONFLICT (key) DO NOTHING RETURNING key::text",
                [chunk],
            )
            cur.fetchall()
        return time.perf_counter() - started

    def chunks() -> list[list[str]]:
        return [sorted(str(uuid.uuid4()) for _ in range(CHUNK)) for _ in range(keys // CHUNK)]

    times: dict[str, list[float]] = {"first period": [], "next period": [], "single table": []}
    WindowState.objects.update_or_create(id=1, defaults={"anchor": previous})
    for chunk in chunks():
        times["first period"].append(claim(previous, chunk))
        single(chunk)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE scoring_seenevent")
        cur.execute("VACUUM ANALYZE seen_single")
    WindowState.objects.update_or_create(id=1, defaults={"anchor": current})
    for chunk in chunks():  # interleaved, so both see the same load on the machine
        times["next period"].append(claim(current, chunk))
        times["single table"].append(single(chunk))
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE scoring_seenevent")
        cur.execute("VACUUM ANALYZE seen_single")
        partitioned = _sizes(cur, "scoring_seenevent")
        cur.execute(
            "SELECT pg_relation_size('seen_single'), pg_indexes_size('seen_single'), "
            "pg_total_relation_size('seen_single')"
        )
        heap, index, total = cur.fetchone()
        cur.execute("DROP TABLE seen_single")
    return {
        "keys": 2 * keys,
        "mib_per_million_keys": {
            "partitioned": _per_million(partitioned, 2 * keys),
            "single table": _per_million({"heap": heap, "index": index, "total": total}, 2 * keys),
        },
        "ms_per_1000_keys_median": {k: round(statistics.median(v) * 1000, 2) for k, v in times.items()},
    }


def probes_measure(*, keys: int, rounds: int, repeats: int) -> dict[str, float]:
    """Claim time with 8, 4, 2, 1 and 0 older live partitions of ``keys`` keys each.

    Daily partitions with 8 days of retention keep 8 older partitions live; the
    8-day periods keep one. Each round claims 1,000 new keys and rolls back, so
    every round meets the same tables; the partitions are loaded ``repeats``
    times and the median of the repeats' medians is reported (the machine is shared).
    """
    from django.db import connection, transaction

    from scoring.counting import _keys_claim
    from scoring.partitions import SEEN_PERIOD_DAYS, seen_partition_ensure, seen_period

    class Rollback(Exception):
        pass

    current = datetime.combine(seen_period(day=datetime.now(UTC).date()), datetime.min.time(), tzinfo=UTC)
    older = [(current - timedelta(days=SEEN_PERIOD_DAYS * i)).date() for i in range(1, 9)]
    medians: dict[str, list[float]] = {}
    for _ in range(repeats):
        _reset()
        seen_partition_ensure(period=current.date())
        with connection.cursor() as cur:
            for period in older:
                seen_partition_ensure(period=period)
                cur.execute(
                    "INSERT INTO scoring_seenevent (key, period) "
                    "SELECT gen_random_uuid(), %s FROM generate_series(1, %s)",
                    [period, keys],
                )
            cur.execute("VACUUM ANALYZE scoring_seenevent")
        for live in (8, 4, 2, 1, 0):
            with connection.cursor() as cur:
                for period in older[live:]:
                    cur.execute(f"DROP TABLE IF EXISTS scoring_seenevent_p{period:%Y%m%d}")
                # Rolled-back claims leave dead index entries; each figure starts from an empty partition.
                cur.execute(f"TRUNCATE scoring_seenevent_p{current:%Y%m%d}")
            times = []
            for _ in range(rounds):
                chunk = sorted(str(uuid.uuid4()) for _ in range(CHUNK))
                started = time.perf_counter()
                try:
                    with transaction.atomic():
                        _keys_claim(chunk, anchor=current)
                        raise Rollback
                except Rollback:
                    times.append(time.perf_counter() - started)
            medians.setdefault(f"{live} older partitions", []).append(statistics.median(times))
    return {name: round(statistics.median(values) * 1000, 2) for name, values in medians.items()}


def ledger_measure(*, events: int, videos: int) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection

    from scoring.ledger import batch_process, batch_store
    from videos.models import Category, Video

    owner, _ = User.objects.get_or_create(username="dedupe-size")
    category, _ = Category.objects.get_or_create(slug="dedupe-size", defaults={"name": "Dedupe size"})
    ids = [
        v.id
        for v in Video.objects.bulk_create(
            Video(title=f"v{i}", category=category, owner=owner, duration_seconds=60) for i in range(videos)
        )
    ]
    rng = random.Random(7)
    now = datetime.now(UTC)
    types = ["view", "view", "view", "like", "comment", "share"]
    offset = 0
    for _ in range(events // BATCH):
        messages = []
        for _ in range(BATCH):
            body = {
                "event_id": str(uuid.uuid4()),
                "video_id": rng.choice(ids),
                "type": rng.choice(types),
                "user_id": f"u{rng.randrange(100_000)}",
                "occurred_at": (now - timedelta(seconds=rng.randrange(6 * 3600))).isoformat(),
            }
            messages.append([0, offset, json.dumps(body, separators=(",", ":"))])
            offset += 1
        batch_process(batch_id=str(batch_store(topic="video-events", messages=messages).id), apply=False)
    with connection.cursor() as cur:
        before = _sizes(cur, "scoring_batch")
        # The files keep the space of each batch's earlier versions (its raw messages before
        # processing) for reuse; a rewrite leaves the live rows alone.
        cur.execute("VACUUM FULL scoring_batch")
        after = _sizes(cur, "scoring_batch")
    return {
        "events": events,
        "batches": events // BATCH,
        "mib_per_million_events": {"files": _per_million(before, events), "live rows": _per_million(after, events)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys per period (two periods are loaded)")
    parser.add_argument("--probe-keys", type=int, default=250_000, help="keys in each older partition (probe cost)")
    parser.add_argument("--rounds", type=int, default=200, help="claims of 1,000 keys per probe-cost figure")
    parser.add_argument("--repeats", type=int, default=3, help="loads of the older partitions (probe cost)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--videos", type=int, default=10_000)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))
    import subprocess

    import devstack

    stack = devstack.Stack(ROOT / ".devdata" / "dedupe-size")
    env = {**os.environ, **stack.up(), "DJANGO_SETTINGS_MODULE": "ranking_site.settings.base", "DEBUG": "false"}
    os.environ.update(env)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        _reset()
        result = {
            "keys": keys_measure(keys=args.keys),
            "ms_per_1000_keys_by_live_older_partitions": probes_measure(
                keys=args.probe_keys, rounds=args.rounds, repeats=args.repeats
            ),
            "ledger": ledger_measure(events=args.events, videos=args.videos),
        }
        print(json.dumps(result, indent=2))
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
