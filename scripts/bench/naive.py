"""Side by side, the naive Postgres design: a row per event, ``GROUP BY`` at read time."""

from __future__ import annotations

import functools
import multiprocessing as mp
import random
import time
from typing import Any

from .config import NAIVE_PROCESSES
from .traffic import TYPE_CUM, TYPE_NAMES, Traffic
from .util import read_latencies_ms, timed_bar

NAIVE_DDL = """
CREATE TABLE IF NOT EXISTS bench_naive_event (
    id bigserial PRIMARY KEY,
    video_id bigint NOT NULL,
    event_type_id integer NOT NULL,
    user_id varchar(64) NOT NULL DEFAULT '',
    weight double precision NOT NULL,
    occurred_at timestamptz NOT NULL
)
"""
NAIVE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS bench_naive_event_video_time ON bench_naive_event (video_id, occurred_at)",
    "CREATE INDEX IF NOT EXISTS bench_naive_event_time ON bench_naive_event (occurred_at)",
)
NAIVE_TOP20 = """
WITH top AS (
    SELECT video_id, SUM(weight) AS score FROM bench_naive_event
    WHERE occurred_at >= now() - interval '1 day'
    GROUP BY video_id ORDER BY 2 DESC LIMIT 20
)
SELECT top.video_id, top.score, v.title, c.slug, u.username, v.thumbnail_url, v.duration_seconds, v.published_at
FROM top JOIN videos_video v ON v.id = top.video_id
JOIN videos_category c ON c.id = v.category_id JOIN auth_user u ON u.id = v.owner_id
ORDER BY top.score DESC
"""
NAIVE_RANK = """
SELECT rank, score FROM (
    SELECT video_id, SUM(weight) AS score, RANK() OVER (ORDER BY SUM(weight) DESC) AS rank
    FROM bench_naive_event WHERE occurred_at >= now() - interval '1 day'
    GROUP BY video_id
) ranked WHERE video_id = %s
"""


@functools.cache
def naive_model() -> Any:
    """The model a first version would have: one row per event, written with ``.create()``."""
    from django.db import models

    class BenchNaiveEvent(models.Model):
        video_id = models.BigIntegerField()
        event_type_id = models.IntegerField()
        user_id = models.CharField(max_length=64, blank=True, default="")
        weight = models.FloatField()
        occurred_at = models.DateTimeField()

        class Meta:
            app_label = "events"
            managed = False  # a benchmark-only table, created by raw SQL
            db_table = "bench_naive_event"

        def __str__(self) -> str:
            return f"{self.event_type_id} on video {self.video_id}"

    return BenchNaiveEvent


def naive_load() -> dict[str, Any]:
    """One row per counted event, generated server-side from the counters (each hour's hourly and
    minute rows: the view scoring_hourtotal), indexes built after."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(NAIVE_DDL)
        cur.execute("DROP INDEX IF EXISTS bench_naive_event_video_time")
        cur.execute("DROP INDEX IF EXISTS bench_naive_event_time")
        cur.execute("TRUNCATE bench_naive_event RESTART IDENTITY")
        # Each counter row becomes `events` rows spread over its hour; a watch row's units are shared out.
        cur.execute(
            """
            INSERT INTO bench_naive_event (video_id, event_type_id, weight, occurred_at)
            SELECT c.video_id, c.event_type_id, e.weight * c.units / c.events,
                   LEAST(c.hour + random() * interval '1 hour', now())
            FROM scoring_hourtotal c JOIN events_eventtype e ON e.id = c.event_type_id,
                 generate_series(1, c.events)
            WHERE c.events > 0
            """
        )
        rows = cur.rowcount
        for ddl in NAIVE_INDEXES:
            cur.execute(ddl)
    old = connection.autocommit
    connection.set_autocommit(True)
    try:
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE bench_naive_event")  # visibility map and statistics, as a DBA would
    finally:
        connection.set_autocommit(old)
    return {"rows": rows, "load_s": time.perf_counter() - started}


def _naive_insert_loop(traffic: Traffic, seed: int, deadline: float, out: Any) -> None:
    from django.db import connection
    from django.utils import timezone

    model = naive_model()
    rng = random.Random(seed)
    n = 0
    while time.monotonic() < deadline:
        vids = rng.choices(traffic.video_ids, cum_weights=traffic.cum, k=100)
        kinds = rng.choices(TYPE_NAMES, cum_weights=TYPE_CUM, k=100)
        for vid, kind in zip(vids, kinds, strict=True):
            model.objects.create(
                video_id=vid, event_type_id=traffic.type_ids[kind], user_id=f"n{seed}-{n}", weight=traffic.weights.get(kind, 1.0),
                occurred_at=timezone.now(),
            )  # fmt: skip
            n += 1
    connection.close()
    out.put(n)


def naive_ingest_run(*, traffic: Traffic, seconds: float, processes: int = NAIVE_PROCESSES) -> dict[str, Any]:
    """Per-event ORM ``.create()`` from several processes (no HTTP in front: generous to the naive design)."""
    from django.db import connection, connections

    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM bench_naive_event")
        last_id = int(cur.fetchone()[0])
    connections.close_all()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    started = time.monotonic()
    deadline = started + seconds
    procs = [ctx.Process(target=_naive_insert_loop, args=(traffic, 100 + i, deadline, queue)) for i in range(processes)]
    for p in procs:
        p.start()
    with timed_bar(seconds, "naive inserts"):
        inserted = sum(int(queue.get(timeout=seconds + 60)) for _ in procs)
    for p in procs:
        p.join(10)
    elapsed = time.monotonic() - started
    with connection.cursor() as cur:  # keep the table at the seed's event count for the reads
        cur.execute("DELETE FROM bench_naive_event WHERE id > %s", [last_id])
    return {"inserts_per_s": inserted / elapsed, "inserted": inserted}


def naive_reads_run(*, video_ids: list[int], samples: int) -> dict[str, Any]:
    from django.db import connection

    rng = random.Random(9)
    top: list[float] = []
    rank: list[float] = []
    with connection.cursor() as cur:
        for _ in range(samples):
            started = time.perf_counter()
            cur.execute(NAIVE_TOP20)
            cur.fetchall()
            top.append(time.perf_counter() - started)
        for _ in range(samples):
            started = time.perf_counter()
            cur.execute(NAIVE_RANK, [rng.choice(video_ids)])
            cur.fetchall()
            rank.append(time.perf_counter() - started)
    return read_latencies_ms(top=top, rank=rank)
