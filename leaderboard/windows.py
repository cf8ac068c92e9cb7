"""The window vocabulary and arithmetic shared by the live path, the roll-over and the rebuild.

Windows count back from the anchored minute M (scoring.models.WindowState), which
beat moves forward every minute:

- ``hour``: exactly the last 60 minutes, at minute resolution: minute buckets
  m with m >= M - 59 min;
- ``day`` / ``week``: the last 24 / 168 UTC hour buckets, the hour of M included;
- ``all``: every bucket;
- ``trending``: every event, forward-decayed by its minute
  (``w * 2^((minute - t0) / half_life)``, divided at read time);
- ``rising``: the last 60 minutes against the video's own average hour over the
  week, with a prior (``rising_score``); derived from ``hour`` and ``week``.

Buckets after M (events up to 5 minutes in the future) belong to every window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

WINDOWS: tuple[str, ...] = ("hour", "day", "week", "all", "trending", "rising")
# A delta's window mask: bit i set means the bucket counts in WINDOWS[i] (the Lua scripts read the same
# table). ``rising`` has a bit for symmetry but no delta carries it: it is recomputed from hour and week.
WINDOW_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(WINDOWS)}
# Hour buckets (back from the current one, inclusive) that the hour-resolution windows keep.
WINDOW_HOURS: dict[str, int] = {"day": 24, "week": 168}
# Minute buckets (back from the anchored one, inclusive) of the hour window.
HOUR_WINDOW_MINUTES = 60
# Below this a score is a float-rounding residue of adds and subtracts: the member leaves the set.
EPS: dict[str, float] = {w: (1e-12 if w in ("trending", "rising") else 1e-9) for w in WINDOWS}
# Rising: score of the last 60 minutes / (average hour of the week + the prior). The prior is the
# score of ten likes an hour: a video with three views scores 3 / 50, far below a real burst.
RISING_PRIOR_PER_HOUR = 50.0
WEEK_HOURS = 168

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def minute_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def rising_week_average(week_score: float) -> float:
    """The video's own baseline: its average hour over the week (a negative week counts as 0)."""
    return max(week_score, 0.0) / WEEK_HOURS


def rising_denominator(week_score: float) -> float:
    return rising_week_average(week_score) + RISING_PRIOR_PER_HOUR


def rising_score(hour_score: float, week_score: float) -> float:
    """The rising rule, once (the Lua scripts carry the same constants)."""
    return hour_score / rising_denominator(week_score)


def hour_window_start(anchor: datetime) -> datetime:
    """First minute bucket of the hour window anchored at minute ``anchor``."""
    return anchor - (HOUR_WINDOW_MINUTES - 1) * MINUTE


def window_start(window: str, anchor: datetime) -> datetime | None:
    """First bucket inside ``window`` when anchored at minute ``anchor``; None means unbounded."""
    if window == "hour":
        return hour_window_start(anchor)
    hours = WINDOW_HOURS.get(window)
    return None if hours is None else hour_floor(anchor) - (hours - 1) * HOUR


@lru_cache(maxsize=4096)  # every delta of a batch asks, for a few distinct minutes
def window_mask(minute: datetime, anchor: datetime) -> int:
    """The windows an event of minute bucket ``minute`` counts in, anchored at minute ``anchor``."""
    mask = WINDOW_BITS["all"] | WINDOW_BITS["trending"]
    if minute >= hour_window_start(anchor):
        mask |= WINDOW_BITS["hour"]
    hour = hour_floor(minute)
    for window in WINDOW_HOURS:
        start = window_start(window, anchor)
        assert start is not None
        if hour >= start:
            mask |= WINDOW_BITS[window]
    return mask


def leaving_hours(old_anchor: datetime, new_anchor: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Per hour-resolution window, the half-open range of hour buckets that leave it."""
    ranges: dict[str, tuple[datetime, datetime]] = {}
    for window in WINDOW_HOURS:
        old_start, new_start = window_start(window, old_anchor), window_start(window, new_anchor)
        assert old_start is not None and new_start is not None
        if new_start > old_start:
            ranges[window] = (old_start, new_start)
    return ranges


def leaving_minutes(old_anchor: datetime, new_anchor: datetime) -> tuple[datetime, datetime] | None:
    """The half-open range of minute buckets that leave the hour window, if any."""
    old_start, new_start = hour_window_start(old_anchor), hour_window_start(new_anchor)
    return (old_start, new_start) if new_start > old_start else None


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())
