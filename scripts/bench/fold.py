"""The ingest's deferred work: the minute rows the runs left, moved into the hourly rows.

A batch writes an event of the hour window to its minute row only; ``counters_fold`` moves an
hour's minute rows into the hourly rows once the hour has left the window
(scoring.models.MinuteCounter). No ingest run lasts that long, so the runs' CPU figures hold the
minute rows' writes but not their fold. This stage, the last before the report, moves the windows
two hours on (nothing reads the rankings after it) and folds every minute row, timing Postgres.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from .servers import tree_cpu_seconds


def fold_measure(*, postgres_pid: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from scoring.ledger import counters_fold, window_rollover

    with connection.cursor() as cur:
        cur.execute("SELECT count(*), COALESCE(SUM(events), 0) FROM scoring_minutecounter")
        rows, events = (int(v) for v in cur.fetchone())
    window_rollover(now=timezone.now() + timedelta(hours=2))
    cpu_before, started = tree_cpu_seconds(postgres_pid), time.monotonic()
    moved = counters_fold(budget_s=3600.0)
    seconds, cpu = time.monotonic() - started, tree_cpu_seconds(postgres_pid) - cpu_before
    return {
        "minute_rows": rows,
        "events": events,
        "moved": moved,
        "seconds": seconds,
        "postgres_cpu_s": cpu,
        "us_per_row": 1e6 * cpu / max(moved, 1),
        "cpu_s_per_1k_events": 1000 * cpu / max(events, 1),
    }
