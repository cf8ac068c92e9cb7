"""Query-parameter input and JSON output of the rankings API.

Outputs read the selector dataclasses (rankings.selectors) attribute by
attribute; nothing here touches Redis.
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from core.api.pagination import MAX_OFFSET
from core.api.serializers import StrictIntegerField
from leaderboard.windows import WINDOWS
from videos.serializers import category_slug_field

WINDOW_HELP = (
    "`hour`: exactly the last 60 minutes, at minute resolution; `day`: the last 24 UTC hour buckets; `week`: "
    "the last 168; `all`: all time; `trending`: all time, each event weighted 2^(-age / half-life) at minute "
    "resolution (default half-life 6 h); `rising`: the last 60 minutes' score divided by the video's own average "
    "hour over the week plus a prior of 50 (see `rising` in a video's standing)."
)
MAX_LIMIT = 100
MAX_RADIUS = 50


def _window_field(*, default: str | None = "day", help_text: str = WINDOW_HELP) -> serializers.ChoiceField:
    """A window parameter; with no default it is optional and absent from the validated data when omitted."""
    # The message lists the allowed values, so a 400 is enough to fix the request.
    return serializers.ChoiceField(
        choices=list(WINDOWS),
        help_text=help_text,
        **({"default": default} if default is not None else {"required": False}),
        error_messages={"invalid_choice": f'"{{input}}" is not a valid window; allowed values: {", ".join(WINDOWS)}.'},
    )


def _category_field() -> serializers.SlugField:
    return category_slug_field(help_text="Category slug; omit for the global ranking. Unknown slug: 404.")


# --- input ----------------------------------------------------------------------


class RankingListInputSerializer(serializers.Serializer):
    window = _window_field()
    category = _category_field()
    limit = StrictIntegerField(min_value=1, max_value=MAX_LIMIT, default=20, help_text="Page size, 1..100.")
    offset = StrictIntegerField(
        min_value=0,
        max_value=MAX_OFFSET,
        default=0,
        help_text=f"0-based position of the first entry, 0..{MAX_OFFSET:,}; past the end the page is empty.",
    )
    as_of = serializers.DateTimeField(
        required=False,
        help_text=(
            "ISO-8601 time (UTC when it has no offset): answer the list as it stood then, from the latest "
            "rank snapshot taken at or before it. Omit for the live list."
        ),
    )


class RankHistoryInputSerializer(serializers.Serializer):
    window = _window_field()
    category = _category_field()
    since = serializers.DateTimeField(
        required=False,
        help_text="ISO-8601 time (UTC when it has no offset): the first point at or after it. Default: every kept snapshot.",
    )


class VideoRankingInputSerializer(serializers.Serializer):
    window = _window_field(
        default=None,
        help_text=(
            "Only this window's standing and breakdown (its lists alone are read: cheaper for a page that "
            "shows one list); omit for every window. " + WINDOW_HELP
        ),
    )


class RankingAroundInputSerializer(serializers.Serializer):
    window = _window_field()
    category = _category_field()
    radius = StrictIntegerField(
        min_value=0, max_value=MAX_RADIUS, default=5, help_text="Neighbours on each side, 0..50."
    )


class RankingMoversInputSerializer(serializers.Serializer):
    window = _window_field()
    category = _category_field()
    limit = StrictIntegerField(
        min_value=1, max_value=MAX_LIMIT, default=20, help_text="At most this many climbers and new entries, 1..100."
    )


# --- output ---------------------------------------------------------------------


class CachedDateTimeField(serializers.DateTimeField):
    """A datetime the metadata cache stores as ISO text: printed like every other datetime of the API."""

    def to_representation(self, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_datetime(value) if value else None
            if value is None:
                return None
        return super().to_representation(value)


class RankedVideoSerializer(serializers.Serializer):
    """Video metadata as cached next to the rankings (no database read per entry)."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    category = serializers.CharField(help_text="Category slug.")
    owner = serializers.CharField(help_text="Owner's username.")
    thumbnail_url = serializers.CharField(allow_blank=True)
    duration_seconds = serializers.IntegerField()
    published_at = CachedDateTimeField(allow_null=True)


class RankingEntryOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1-based; equal scores share a rank (1, 2, 2, 4).")
    score = serializers.FloatField(help_text="Sum over event types of weight x units in the window.")
    previous_rank = serializers.IntegerField(
        allow_null=True, help_text="Rank at the last snapshot; null if it was not in the snapshot's top positions."
    )
    video = RankedVideoSerializer()


class RankingPageOutputSerializer(serializers.Serializer):
    window = serializers.CharField()
    category = serializers.CharField(allow_null=True, help_text="Category slug; null for the global ranking.")
    generated_at = serializers.DateTimeField()
    taken_at = serializers.DateTimeField(
        required=False,
        help_text="Only with `as_of`: when the snapshot that answers was taken (the latest at or before `as_of`).",
    )
    total = serializers.IntegerField(
        help_text="Videos in this ranking (with a non-zero score); with `as_of`, the positions the snapshot kept."
    )
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = RankingEntryOutputSerializer(many=True, help_text="Best first; ties by lower video id first.")


class StandingOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True, help_text="Null when the video has no score in this window.")
    score = serializers.FloatField(allow_null=True)
    percentile = serializers.FloatField(
        allow_null=True,
        help_text="Share of the other ranked videos that do not beat it, 0..100: rank 1 is 100, the last 0.",
    )
    total = serializers.IntegerField(help_text="Videos in this ranking.")


# "global" is a Python keyword, so this serializer is declared with type().
WindowStandingOutputSerializer: type[serializers.Serializer] = type(
    "WindowStandingOutputSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "The video's standing in the global ranking and in its category's ranking.",
        "global": StandingOutputSerializer(),
        "category": StandingOutputSerializer(),
    },
)


class BreakdownItemOutputSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="Event type name.")
    weight = serializers.FloatField()
    events = serializers.IntegerField(help_text="Events counted in the window.")
    units = serializers.FloatField(
        help_text="1 per event, or the completion ratio for `watch` (decayed in trending; divided by the baseline in "
        "rising)."
    )
    score = serializers.FloatField(help_text="weight x units.")


def _per_window(name: str, doc: str, field: Any) -> type[serializers.Serializer]:
    # One explicit property per window keeps the OpenAPI schema exact. Each is optional: a request
    # that names a window gets that one alone.
    attrs: dict[str, Any] = {"__doc__": doc, **{window: field(required=False) for window in WINDOWS}}
    return type(name, (serializers.Serializer,), attrs)


StandingsOutputSerializer = _per_window(
    "StandingsOutputSerializer",
    "Standing per window: every window, or the one the request names.",
    WindowStandingOutputSerializer,
)
BreakdownOutputSerializer = _per_window(
    "BreakdownOutputSerializer",
    "Per window (every window, or the one the request names), one row per event type; the rows' scores add "
    "up to the window's score.",
    lambda **options: BreakdownItemOutputSerializer(many=True, **options),
)


class RisingOutputSerializer(serializers.Serializer):
    """Why the video stands where it does in `rising`: score = last_hour_score / (week_average_per_hour +
    prior_per_hour), week_average_per_hour = max(week_score, 0) / 168."""

    last_hour_score = serializers.FloatField(help_text="Score of the last 60 minutes.")
    week_score = serializers.FloatField(help_text="Score of the last 168 hour buckets (the week window).")
    week_average_per_hour = serializers.FloatField(help_text="The video's own baseline: max(week_score, 0) / 168.")
    prior_per_hour = serializers.FloatField(help_text="Added to every baseline, so that a tiny video cannot top it.")
    rising_score = serializers.FloatField(help_text="last_hour_score / (week_average_per_hour + prior_per_hour).")


class VideoRankingOutputSerializer(serializers.Serializer):
    video = RankedVideoSerializer()
    standings = StandingsOutputSerializer()
    breakdown = BreakdownOutputSerializer()
    rising = RisingOutputSerializer()


class AroundEntryOutputSerializer(RankingEntryOutputSerializer):
    is_target = serializers.BooleanField(help_text="True for the video the request is about.")


class RankingAroundOutputSerializer(serializers.Serializer):
    window = serializers.CharField()
    category = serializers.CharField(allow_null=True)
    video_id = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True, help_text="The video's rank; null if it has no score here.")
    results = AroundEntryOutputSerializer(many=True, help_text="Up to `radius` entries above and below the video.")


class MoverOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    previous_rank = serializers.IntegerField()
    change = serializers.IntegerField(help_text="Places gained since the snapshot.")
    score = serializers.FloatField()
    video = RankedVideoSerializer()


class NewEntryOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    previous_rank = serializers.IntegerField(allow_null=True, help_text="Always null: absent from the snapshot.")
    score = serializers.FloatField()
    video = RankedVideoSerializer()


class RankingMoversOutputSerializer(serializers.Serializer):
    window = serializers.CharField()
    category = serializers.CharField(allow_null=True)
    since = serializers.DateTimeField(
        allow_null=True, help_text="When the compared snapshot was taken; null before the first snapshot."
    )
    climbers = MoverOutputSerializer(many=True, help_text="Biggest gain first.")
    new_entries = NewEntryOutputSerializer(many=True, help_text="Best rank first.")


class HistoryPointOutputSerializer(serializers.Serializer):
    taken_at = serializers.DateTimeField(help_text="When the snapshot was taken.")
    rank = serializers.IntegerField(
        allow_null=True, help_text="Rank in the list then; null when the video was not in the positions kept."
    )
    score = serializers.FloatField(
        allow_null=True, help_text="Score then (trending: decayed to that time); null with rank."
    )


class RankHistoryOutputSerializer(serializers.Serializer):
    video_id = serializers.IntegerField()
    window = serializers.CharField()
    category = serializers.CharField(allow_null=True, help_text="Category slug; null for the global ranking.")
    since = serializers.DateTimeField(help_text="Start of the period asked for.")
    snapshot_interval_s = serializers.IntegerField(help_text="Seconds between snapshots (the resolution).")
    depth = serializers.IntegerField(help_text="Positions each snapshot keeps: a null rank means below this.")
    points = HistoryPointOutputSerializer(many=True, help_text="One per snapshot of the list, oldest first.")
