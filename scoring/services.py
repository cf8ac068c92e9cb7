"""Bulk writes on the counters outside the event path: loading history (demo data) and
resetting what scoring holds. Raw SQL here names only scoring's own tables."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from django.db import connection, transaction

from core.bulk import table_copy, tables_analyze, tables_truncate
from core.progress import Progress, progress_none
from scoring.models import Batch, DeadLetter, HourlyCounter, MinuteCounter, SeenEvent

# (video id, event type id, events, units, trending units) of one hour bucket.
CounterAdd = tuple[int, int, int, float, float]
# (video id, event type id, minute as epoch seconds, events, units, trending units) for the hour
# window: events in a minute row are in no hourly row (scoring.models.MinuteCounter).
MinuteAdd = tuple[int, int, int, int, float, float]


def counters_bulk_add(
    *,
    hours: Iterable[tuple[datetime, Iterable[CounterAdd]]],
    minutes: Callable[[], Sequence[MinuteAdd]] = lambda: (),
    progress: Progress | None = None,
) -> int:
    """Add events and units to the hourly counters, one (hour, rows) slice after the other,
    then the minute counters that ``minutes`` returns once the hours are consumed (events of the
    hour window: in those rows only, not in the hourly ones).

    Hourly rows are COPYed into a temp table and then upserted in one statement: millions of
    rows in seconds, added to counters that exist already. Each (video, type) appears at most
    once per hour, each (video, type, minute) once. Nothing reaches Redis: rebuild the rankings
    afterwards. Reports the stage ``counters`` (hourly rows upserted). Returns their number.
    """
    report = progress or progress_none

    def lines() -> Iterator[list[str]]:
        for hour, rows in hours:
            stamp = hour.isoformat()
            yield [f"{v}\t{t}\t{stamp}\t{n}\t{u!r}\t{tu!r}\n" for v, t, n, u, tu in rows]

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE counters_load (video_id bigint, event_type_id bigint, hour timestamptz, "
            "events bigint, units float8, trend_units float8) ON COMMIT DROP"
        )
        rows = table_copy(table="counters_load", columns=("video_id", "event_type_id", "hour", "events", "units",
                          "trend_units"), lines=itertools.chain.from_iterable(lines()))  # fmt: skip
        report("counters", 0, None)
        cur.execute(
            """
            INSERT INTO scoring_hourlycounter (video_id, event_type_id, hour, events, units, trend_units)
            SELECT video_id, event_type_id, hour, events, units, trend_units FROM counters_load
            ON CONFLICT (video_id, event_type_id, hour) DO UPDATE
            SET events = scoring_hourlycounter.events + EXCLUDED.events,
                units = scoring_hourlycounter.units + EXCLUDED.units,
                trend_units = scoring_hourlycounter.trend_units + EXCLUDED.trend_units
            """
        )
        # Dropped now, not at commit: an enclosing transaction may load again before it ends.
        cur.execute("DROP TABLE counters_load")
        recent = sorted(minutes())
        cur.execute(
            """
            INSERT INTO scoring_minutecounter (video_id, event_type_id, minute, events, units, trend_units)
            SELECT v, t, to_timestamp(m), e, u, tu
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::float8[], %s::float8[])
                AS r(v, t, m, e, u, tu)
            ON CONFLICT (video_id, event_type_id, minute) DO UPDATE
            SET events = scoring_minutecounter.events + EXCLUDED.events,
                units = scoring_minutecounter.units + EXCLUDED.units,
                trend_units = scoring_minutecounter.trend_units + EXCLUDED.trend_units
            """,
            [[r[0] for r in recent], [r[1] for r in recent], [r[2] for r in recent], [r[3] for r in recent],
             [r[4] for r in recent], [r[5] for r in recent]],
        )  # fmt: skip
    report("counters", rows, rows)
    return rows


def counters_reset() -> None:
    """Forget every counted event: counters, dedupe keys, the batch ledger and dead letters."""
    models = (HourlyCounter, MinuteCounter, SeenEvent, Batch, DeadLetter)
    tables_truncate(tables=[m._meta.db_table for m in models])


def counters_analyze() -> None:
    """Fresh planner statistics after a bulk load: without them the rebuild's aggregate over
    the counters can pick a plan many times slower."""
    tables_analyze(tables=[HourlyCounter._meta.db_table])
