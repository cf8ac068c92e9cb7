"""The ``db`` sink: the history aggregated per (video, type, hour), with the minute buckets the
hour window still holds, added to the counters in bulk (scoring.services). Millions of events in
under a minute; the rankings are rebuilt after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings

from core.progress import Progress
from demo.catalogue import Catalog
from demo.history import EventKind, History
from demo.plan import Timeline
from events.wire import event_units
from leaderboard.windows import HOUR_WINDOW_MINUTES
from scoring.services import CounterAdd, MinuteAdd, counters_bulk_add


def counters_write(
    *, stream: History, catalog: Catalog, kinds: list[EventKind], timeline: Timeline, total: int, progress: Progress
) -> tuple[int, int]:
    """Add the stream to the hourly (and recent minute) counters. Returns (events, hourly counter rows)."""
    ids, durations = catalog.ids, catalog.durations
    type_ids = [k.id for k in kinds]
    names = [k.name for k in kinds]
    half_life = settings.RANKING_TRENDING_HALF_LIFE_S
    # Minute buckets the hour window may still hold: their events go to minute counters instead of
    # hourly ones, as on the live path (scoring.models.MinuteCounter).
    recent = int(timeline.now) // 60 * 60 - HOUR_WINDOW_MINUTES * 60
    minute_slots: dict[tuple[int, int, int], list[float]] = {}
    done = 0

    def hours() -> Iterator[tuple[datetime, list[CounterAdd]]]:
        nonlocal done
        progress("events", 0, total)
        for hour, events in stream:
            hour_start = timeline.start + hour * 3600
            slots: dict[tuple[int, int], list[float]] = {}
            for video, kind, at, _user, seconds in events:
                units = event_units(event_type=names[kind], watch_seconds=seconds, duration_seconds=durations[video])
                minute = at // 60 * 60
                if minute >= recent:
                    slot = minute_slots.setdefault((video, kind, minute), [0, 0.0, 0.0])
                else:
                    slot = slots.setdefault((video, kind), [0, 0.0, 0.0])
                slot[0] += 1
                slot[1] += units
                # The same rule as scoring.counting: trending's minute offset inside the hour.
                slot[2] += units * 2.0 ** ((minute - hour_start) / half_life)
            stamp = datetime.fromtimestamp(hour_start, tz=UTC)
            yield stamp, [(ids[v], type_ids[k], int(n), u, tu) for (v, k), (n, u, tu) in slots.items()]
            done += len(events)
            progress("events", done, total)

    def minutes() -> list[MinuteAdd]:
        return [(ids[v], type_ids[k], m, int(n), u, tu) for (v, k, m), (n, u, tu) in minute_slots.items()]

    rows = counters_bulk_add(hours=hours(), minutes=minutes, progress=progress)
    return done, rows
