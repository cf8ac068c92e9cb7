"""Window arithmetic shared by the live path, the roll-over and the rebuild.

Windows are sets of UTC hour buckets counted back from the anchored current
hour H (scoring.models.WindowState): ``hour`` = {H-1, H}, ``day`` = the last
24 buckets, ``week`` = the last 168, ``all`` = every bucket. Buckets after H
(events up to 5 minutes in the future) belong to every window. ``trending`` is
every bucket, forward-decayed by its bucket start time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WINDOWS: tuple[str, ...] = ("hour", "day", "week", "all", "trending")
# A delta's window mask: bit i set means the bucket counts in WINDOWS[i] (the Lua scripts read the same table).
WINDOW_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(WINDOWS)}
# Hour buckets (back from the current one, inclusive) that each sliding window keeps.
WINDOW_HOURS: dict[str, int] = {"hour": 2, "day": 24, "week": 168}
# Below this a score is a float-rounding residue of adds and subtracts: the member leaves the set.
EPS: dict[str, float] = {w: (1e-12 if w == "trending" else 1e-9) for w in WINDOWS}

HOUR = timedelta(hours=1)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def window_start(window: str, current_hour: datetime) -> datetime | None:
    """First bucket inside ``window`` when anchored at ``current_hour``; None means unbounded."""
    hours = WINDOW_HOURS.get(window)
    return None if hours is None else current_hour - (hours - 1) * HOUR


def window_mask(bucket: datetime, current_hour: datetime) -> int:
    mask = WINDOW_BITS["all"] | WINDOW_BITS["trending"]
    for window in WINDOW_HOURS:
        start = window_start(window, current_hour)
        assert start is not None
        if bucket >= start:
            mask |= WINDOW_BITS[window]
    return mask


def leaving_buckets(old_hour: datetime, new_hour: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Per sliding window, the half-open range of buckets that leave it when H moves forward."""
    ranges: dict[str, tuple[datetime, datetime]] = {}
    for window in WINDOW_HOURS:
        old_start, new_start = window_start(window, old_hour), window_start(window, new_hour)
        assert old_start is not None and new_start is not None
        if new_start > old_start:
            ranges[window] = (old_start, new_start)
    return ranges


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())
