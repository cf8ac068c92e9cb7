"""Hourly activity API: the score series behind the live page's sparklines and the
video page's activity chart. Thin views over scoring.selectors."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import NotFoundError
from core.api.mixins import BackendUnavailableMixin
from core.api.schema import SERVICE_UNAVAILABLE, error_response, invalid_params_response
from core.api.serializers import MAX_ID, StrictIntegerField
from scoring.selectors import ACTIVITY_MAX_HOURS as MAX_HOURS
from scoring.selectors import ACTIVITY_MAX_IDS as MAX_IDS
from scoring.selectors import activity_range, video_activity_hourly_cached

TAGS = ["activity"]
HOURS_HELP = f"How many hourly buckets, the current hour last: 1..{MAX_HOURS} (24 = a day, 168 = a week)."


def _hours_field() -> StrictIntegerField:
    return StrictIntegerField(min_value=1, max_value=MAX_HOURS, default=24, help_text=HOURS_HELP)


@extend_schema_field(
    {"type": "string", "pattern": r"^ *0*[1-9][0-9]{0,17} *(, *0*[1-9][0-9]{0,17} *){0,99}$", "example": "12,7,40"}
)
class VideoIdsField(serializers.Field):
    """A comma-separated list of positive video ids, e.g. ``12,7,40``; duplicates count once."""

    default_error_messages = {
        "invalid": "Expected comma-separated positive integer ids, e.g. 12,7,40.",
        "empty": "Give at least one id.",
        "too_many": f"At most {MAX_IDS} ids at once.",
    }

    def to_internal_value(self, data: Any) -> list[int]:
        if not isinstance(data, str):
            self.fail("invalid")
        parts = [p.strip() for p in data.split(",")]
        if parts == [""]:
            self.fail("empty")
        if not all(p.isascii() and p.isdigit() for p in parts):
            self.fail("invalid")
        ids = sorted({int(p) for p in parts})
        if ids[0] < 1 or ids[-1] > MAX_ID:
            self.fail("invalid")
        if len(ids) > MAX_IDS:
            self.fail("too_many")
        return ids

    def to_representation(self, value: Any) -> str:
        return ",".join(str(v) for v in value)


class ActivityInputSerializer(serializers.Serializer):
    hours = _hours_field()


class SparklinesInputSerializer(serializers.Serializer):
    ids = VideoIdsField(help_text=f"Comma-separated video ids, at most {MAX_IDS}.")
    hours = _hours_field()


class VideoActivityOutputSerializer(serializers.Serializer):
    video_id = serializers.IntegerField()
    hours = serializers.IntegerField()
    start = serializers.DateTimeField(help_text="Start of the first (oldest) hour bucket, UTC.")
    scores = serializers.ListField(
        child=serializers.FloatField(),
        help_text="Score added in each hour bucket (sum of weight x units), oldest first; `hours` values.",
    )


class SparklinesOutputSerializer(serializers.Serializer):
    hours = serializers.IntegerField()
    start = serializers.DateTimeField(help_text="Start of the first (oldest) hour bucket, UTC.")
    series = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="Video id -> score per hour bucket, oldest first. Unknown or unpublished ids are left out.",
    )


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    params = serializer_class(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


HOURS_INVALID = {"hours": [f"Ensure this value is less than or equal to {MAX_HOURS}."]}
_SERIES_EXAMPLE = [0.0, 3.0, 12.5, 40.0]


class VideoActivityApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="videos_activity",
        summary="A video's score per hour",
        description=(
            "The score a published video gained in each of the last `hours` UTC hour buckets (the current, "
            "partial hour last), from the hourly counters and the current event-type weights. Cached for "
            "up to 30 seconds."
        ),
        parameters=[
            OpenApiParameter("video_id", int, OpenApiParameter.PATH, description="Video id."),
            ActivityInputSerializer,
        ],
        responses={
            200: VideoActivityOutputSerializer,
            400: invalid_params_response(HOURS_INVALID),
            404: error_response(
                404,
                "No published video has this id (unknown, hidden or removed).",
                "not_found",
                ("Unknown video", "No published video with id 42.", {"video_id": 42}),
            ),
            503: SERVICE_UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Last four hours",
                response_only=True,
                value={"video_id": 42, "hours": 4, "start": "2026-01-05T09:00:00Z", "scores": _SERIES_EXAMPLE},
            )
        ],
        tags=TAGS,
    )
    def get(self, request: Request, video_id: int) -> Response:
        hours = _query(ActivityInputSerializer, request)["hours"]
        # One clock reading for the series and its start, so both name the same buckets at an hour's turn.
        now = timezone.now()
        series = video_activity_hourly_cached(video_ids=[video_id], hours=hours, now=now) if video_id <= MAX_ID else {}
        if video_id not in series:
            raise NotFoundError(f"No published video with id {video_id}.", {"video_id": video_id})
        start, _ = activity_range(hours=hours, now=now)
        data = {"video_id": video_id, "hours": hours, "start": start, "scores": series[video_id]}
        return Response(VideoActivityOutputSerializer(data).data)


class SparklinesApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="rankings_sparklines",
        summary="Hourly score series of several videos at once",
        description=(
            "For a page of ranking entries: each published video's score per hour bucket over the last "
            f"`hours` hours, in one request and one database query. At most {MAX_IDS} ids; unknown, hidden "
            "and removed ids are left out of `series`. Cached for up to 30 seconds."
        ),
        parameters=[SparklinesInputSerializer],
        responses={
            200: SparklinesOutputSerializer,
            400: invalid_params_response(
                {"ids": ["Expected comma-separated positive integer ids, e.g. 12,7,40."]},
                {"ids": [f"At most {MAX_IDS} ids at once."]},
                HOURS_INVALID,
            ),
            503: SERVICE_UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Two videos",
                response_only=True,
                value={
                    "hours": 4,
                    "start": "2026-01-05T09:00:00Z",
                    "series": {"42": _SERIES_EXAMPLE, "43": [1.0, 0.0, 0.0, 5.0]},
                },
            )
        ],
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        q = _query(SparklinesInputSerializer, request)
        now = timezone.now()
        series = video_activity_hourly_cached(video_ids=q["ids"], hours=q["hours"], now=now)
        start, _ = activity_range(hours=q["hours"], now=now)
        data = {"hours": q["hours"], "start": start, "series": {str(k): v for k, v in series.items()}}
        return Response(SparklinesOutputSerializer(data).data)
