"""Scores per bucket from the counters, weighted by the current event-type weights.

The one place that turns counter rows into scores; the roll-over, curation moves,
the rebuild and the drift check all read through it, so they agree by construction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db import connection

from events.selectors import event_type_weights
from leaderboard.windows import WINDOW_BITS, hour_window_start, window_mask


def weight_arrays() -> tuple[list[int], list[float]]:
    """Event type ids and their current weights, as the two arrays the SQL joins as ``unnest``."""
    weights = event_type_weights()
    type_ids = sorted(weights)
    return type_ids, [weights[t][1] for t in type_ids]


def minute_scores(
    *, since: datetime, until: datetime | None = None, video_ids: Collection[int] | None = None
) -> list[tuple[int, datetime, float]]:
    """(video, minute, score) of the minute buckets in [since, until)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT c.video_id, c.minute, SUM(w.weight * c.units)
            FROM scoring_minutecounter c
            JOIN unnest(%s::bigint[], %s::float8[]) AS w(id, weight) ON w.id = c.event_type_id
            WHERE c.minute >= %s AND (%s::timestamptz IS NULL OR c.minute < %s)
              AND (%s::bigint[] IS NULL OR c.video_id = ANY(%s::bigint[]))
            GROUP BY c.video_id, c.minute
            """,
            [*weight_arrays(), since, until, until, _ids(video_ids), _ids(video_ids)],
        )
        return list(cur.fetchall())


def hour_scores(
    *, since: datetime | None = None, until: datetime | None = None, video_ids: Collection[int] | None = None
) -> list[tuple[int, datetime, float, float]]:
    """(video, hour, score, trending score relative to the hour start) of the hour buckets in [since, until).

    A bucket's hourly row and minute rows together (the view scoring_hourtotal). The bounds on
    ``bucket`` follow from those on ``hour`` (a row's bucket lies in its hour); they let the range
    be read through each table's index.
    """
    types, weights = weight_arrays()
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT c.video_id, c.hour, SUM(w.weight * c.units), SUM(w.weight * c.trend_units)
            FROM scoring_hourtotal c
            JOIN unnest(%(types)s::bigint[], %(weights)s::float8[]) AS w(id, weight) ON w.id = c.event_type_id
            WHERE (%(since)s::timestamptz IS NULL OR (c.hour >= %(since)s AND c.bucket >= %(since)s))
              AND (%(until)s::timestamptz IS NULL OR (c.hour < %(until)s AND c.bucket < %(until)s::timestamptz + interval '1 hour'))
              AND (%(ids)s::bigint[] IS NULL OR c.video_id = ANY(%(ids)s::bigint[]))
            GROUP BY c.video_id, c.hour
            """,
            {"types": types, "weights": weights, "since": since, "until": until, "ids": _ids(video_ids)},
        )
        return list(cur.fetchall())


def _ids(video_ids: Collection[int] | None) -> list[int] | None:
    return None if video_ids is None else sorted(video_ids)


def videos_history(*, video_ids: Collection[int], anchor: datetime) -> list[tuple[int, datetime, int, float]]:
    """Everything the rankings hold for these videos, as (video, bucket, window mask, score) entries.

    Added to a scope they put the videos' whole history there; subtracted, they take it out.
    The hour window comes from the minute buckets, trending from the minute-exact trending units.
    """
    hour_bit, trending_bit = WINDOW_BITS["hour"], WINDOW_BITS["trending"]
    entries = [
        (vid, minute, hour_bit, score)
        for vid, minute, score in minute_scores(since=hour_window_start(anchor), video_ids=video_ids)
    ]
    for vid, hour, score, trend_score in hour_scores(video_ids=video_ids):
        # The hour-resolution windows of this bucket (day, week, all); the hour window comes from minutes.
        plain = window_mask(hour, anchor) & ~hour_bit & ~trending_bit
        entries.append((vid, hour, plain, score))
        entries.append((vid, hour, trending_bit, trend_score))
    return entries
