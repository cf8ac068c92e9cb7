"""Public rankings API: validate the query, call one selector, serialize.

Every read goes to Redis (rankings.selectors); a lost Redis connection is a
503 in the error shape, never a 500.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import NotFoundError
from core.api.mixins import BackendUnavailableMixin
from core.api.pagination import MAX_OFFSET
from core.api.schema import SERVICE_UNAVAILABLE, error_response, invalid_params_response
from core.api.serializers import MAX_ID
from leaderboard.windows import WINDOWS
from rankings import selectors
from rankings.serializers import (
    RankHistoryInputSerializer,
    RankHistoryOutputSerializer,
    RankingAroundInputSerializer,
    RankingAroundOutputSerializer,
    RankingListInputSerializer,
    RankingMoversInputSerializer,
    RankingMoversOutputSerializer,
    RankingPageOutputSerializer,
    RisingOutputSerializer,
    VideoRankingInputSerializer,
    VideoRankingOutputSerializer,
)

TAGS = ["rankings"]

_VIDEO_EXAMPLE = {
    "id": 42,
    "title": "Cat plays the piano",
    "category": "music",
    "owner": "alice",
    "thumbnail_url": "https://img.example.com/42.jpg",
    "duration_seconds": 185,
    "published_at": "2026-01-05T10:00:00Z",
}

WINDOW_INVALID_DETAILS = {"window": [f'"month" is not a valid window; allowed values: {", ".join(WINDOWS)}.']}
LIMIT_INVALID_DETAILS = {"limit": ["Ensure this value is less than or equal to 100."]}
AS_OF_INVALID_DETAILS = {
    "as_of": [
        "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
    ]
}
CATEGORY_NOT_FOUND_EXAMPLE = ("Unknown category", "Unknown category 'jazz'.", {"category": "jazz"})
VIDEO_NOT_FOUND_EXAMPLE = ("Unknown video", "No published video with id 42.", {"video_id": 42})
CATEGORY_NOT_FOUND = error_response(404, "No category has this slug.", "not_found", CATEGORY_NOT_FOUND_EXAMPLE)
VIDEO_NOT_FOUND = error_response(
    404, "No published video has this id (unknown, hidden or removed).", "not_found", VIDEO_NOT_FOUND_EXAMPLE
)
VIDEO_PATH_PARAM = OpenApiParameter("video_id", int, OpenApiParameter.PATH, description="Video id.")


def _category_not_found(slug: str) -> NotFoundError:
    return NotFoundError(f"Unknown category {slug!r}.", {"category": slug})


def _video_not_found(video_id: int, slug: str | None) -> NotFoundError:
    if slug is None:
        return NotFoundError(f"No published video with id {video_id}.", {"video_id": video_id})
    return NotFoundError(
        f"No published video with id {video_id} in category {slug!r}.", {"video_id": video_id, "category": slug}
    )


def _retention() -> str:
    return (
        f"snapshots are taken every {settings.RANKING_SNAPSHOT_INTERVAL_S} s and kept "
        f"{settings.RANKING_SNAPSHOT_RETENTION.days} days"
    )


def _snapshot_not_kept(exc: selectors.SnapshotNotKept, now: datetime) -> NotFoundError:
    as_of = _iso(exc.as_of)
    if exc.as_of > now:
        message = f"as_of {as_of} is in the future; {_retention()}."
    elif exc.oldest is None:
        message = f"No snapshot of this ranking at {as_of}: none has been taken yet ({_retention()})."
    else:
        message = f"No snapshot of this ranking at {as_of}: {_retention()}; the oldest kept is {_iso(exc.oldest)}."
    return NotFoundError(
        message,
        {
            "as_of": as_of,
            "oldest_snapshot": None if exc.oldest is None else _iso(exc.oldest),
            "snapshot_interval_s": settings.RANKING_SNAPSHOT_INTERVAL_S,
            "retention_days": settings.RANKING_SNAPSHOT_RETENTION.days,
        },
    )


# Output serializers bound once per process (a serializer instance deep-copies its declared fields
# when first used). They document the bodies in the schema; the hottest bodies are built below.
_PAGE_OUTPUT = RankingPageOutputSerializer()
# The top-N page is the hottest read: its body is built as plain dicts, in the field order and with
# the field conversions of RankingPageOutputSerializer (which still documents it in the schema).
# Walking DRF's fields for 20 entries with nested videos was a quarter of the request's CPU.
# Datetimes go through the serializer's own fields, so they print exactly as before.
_GENERATED_AT = _PAGE_OUTPUT.fields["generated_at"]
_ENTRY_OUTPUT: Any = _PAGE_OUTPUT.fields["results"]
_PUBLISHED_AT = _ENTRY_OUTPUT.child.fields["video"].fields["published_at"]
_RISING_FIELDS = tuple(RisingOutputSerializer().fields)


def _iso(moment: datetime) -> str:
    return str(_GENERATED_AT.to_representation(moment))


def _iso_utc(moment: datetime) -> str:
    """What _iso prints (the API's datetimes are UTC), at a seventh of its cost: for thousands of points."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def _published_at(text: str, current_timezone: tzinfo) -> Any:
    # The field's conversion is a function of the cached text and the current time zone alone, and
    # the same pages' videos come back on every request: through the field (parse, time zone lookup,
    # print) it was two thirds of the page body's CPU. Keyed by the zone the field converts to.
    return _PUBLISHED_AT.to_representation(text)


def _video_body(v: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A video's public fields as RankedVideoSerializer prints them."""
    return {
        "id": int(v["id"]),
        "title": str(v["title"]),
        "category": str(v["category"]),
        "owner": str(v["owner"]),
        "thumbnail_url": str(v["thumbnail_url"]),
        "duration_seconds": int(v["duration_seconds"]),
        "published_at": None if v["published_at"] is None else _published_at(v["published_at"], zone),
    }


def _page_body(page: selectors.RankingPage) -> dict[str, Any]:
    zone = timezone.get_current_timezone()
    return {
        "window": page.window,
        "category": page.category,
        "generated_at": _GENERATED_AT.to_representation(page.generated_at),
        "total": int(page.total),
        "limit": int(page.limit),
        "offset": int(page.offset),
        "results": [
            {
                "rank": int(e.rank),
                "score": float(e.score),
                "previous_rank": None if e.previous_rank is None else int(e.previous_rank),
                "video": _video_body(e.video, zone),
            }
            for e in page.results
        ],
    }


def _optional(value: Any, kind: Callable[[Any], Any]) -> Any:
    return None if value is None else kind(value)


def _standing_body(s: selectors.Standing) -> dict[str, Any]:
    return {
        "rank": _optional(s.rank, int),
        "score": _optional(s.score, float),
        "percentile": _optional(s.percentile, float),
        "total": int(s.total),
    }


def _video_standings_body(
    video: dict[str, Any], standings: list[selectors.Standing], breakdown: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The body of VideoRankingOutputSerializer (which documents it in the schema), as plain dicts in
    its field order and with its conversions, as for the top page: video pages and the freshness
    probes poll this read, and DRF's walk of 12 standings and 30 breakdown rows is work for nothing.
    ``standings`` and ``breakdown`` hold the windows of ``standings`` (the request's window, or every one)."""
    by_window: dict[str, dict[str, Any]] = {}
    for standing in standings:
        by_window.setdefault(standing.window, {})[standing.scope] = _standing_body(standing)
    windows = list(by_window)  # in WINDOWS order, as the selector gives them
    rising = selectors.rising_inputs(breakdown=breakdown)
    return {
        "video": _video_body(video, timezone.get_current_timezone()),
        "standings": {w: {"global": by_window[w]["global"], "category": by_window[w]["category"]} for w in windows},
        "breakdown": {
            w: [
                {
                    "type": str(row["type"]),
                    "weight": float(row["weight"]),
                    "events": int(row["events"]),
                    "units": float(row["units"]),
                    "score": float(row["score"]),
                }
                for row in breakdown[w]
            ]
            for w in windows
        },
        "rising": {name: float(rising[name]) for name in _RISING_FIELDS},
    }


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    # .dict(): an empty value ("?window=") must be refused, not read as absent.
    return dict(_validated(serializer_class, tuple(sorted(request.query_params.dict().items()))))


@functools.lru_cache(maxsize=1024)
def _validated(serializer_class: type[serializers.Serializer], params: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    # Validation depends on the query text alone (fixed choices and bounds, no database), and the
    # same few queries arrive over and over: a new input serializer deep-copies its fields, ~9% of
    # a top-20 request. Refused queries raise, so they are never cached; the size bounds memory.
    serializer = serializer_class(data=dict(params))
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class RankingListApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="rankings_list",
        summary="A ranking, one page (live, or as it stood at a past time)",
        description=(
            "Videos ranked by score in a window, globally or in one category. Equal scores share a rank "
            "(standard competition ranking: 1, 2, 2, 4) and are listed lower video id first; a page that starts "
            "inside a tie carries the tie's rank. A page past the end is empty and still reports the real `total`."
            "\n\n**As it stood** (`as_of`): the list from the latest rank snapshot taken at or before `as_of`, "
            "with `taken_at` saying when that was. Snapshots are taken every `RANKING_SNAPSHOT_INTERVAL_S` "
            "(default 300 s: the resolution), keep the top `RANKING_SNAPSHOT_DEPTH` positions (default 100: "
            "`total` and paging stop there) and are kept `RANKING_SNAPSHOT_RETENTION_DAYS` (default 7 days). "
            "Ranks and scores are those of the snapshot (trending decayed to its time); `previous_rank` is the "
            "rank in the snapshot before it; video details are today's, and videos hidden or removed since are "
            "left out (the others keep their ranks). An `as_of` before the oldest kept snapshot, or in the "
            "future, is a 404 that states the retention."
        ),
        parameters=[RankingListInputSerializer],
        responses={
            200: OpenApiResponse(RankingPageOutputSerializer, description="One page of the ranking."),
            400: invalid_params_response(
                WINDOW_INVALID_DETAILS,
                LIMIT_INVALID_DETAILS,
                {"offset": [f"Ensure this value is less than or equal to {MAX_OFFSET}."]},
                AS_OF_INVALID_DETAILS,
            ),
            404: error_response(
                404,
                "No category has this slug, or no snapshot is kept for `as_of`.",
                "not_found",
                CATEGORY_NOT_FOUND_EXAMPLE,
                (
                    "Before the oldest snapshot",
                    "No snapshot of this ranking at 2025-12-01T00:00:00Z: snapshots are taken every 300 s and "
                    "kept 7 days; the oldest kept is 2025-12-29T12:05:00Z.",
                    {
                        "as_of": "2025-12-01T00:00:00Z",
                        "oldest_snapshot": "2025-12-29T12:05:00Z",
                        "snapshot_interval_s": 300,
                        "retention_days": 7,
                    },
                ),
            ),
            503: SERVICE_UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Day ranking",
                response_only=True,
                value={
                    "window": "day",
                    "category": None,
                    "generated_at": "2026-01-05T12:00:00Z",
                    "total": 1234,
                    "limit": 20,
                    "offset": 0,
                    "results": [{"rank": 1, "score": 1520.0, "previous_rank": 3, "video": _VIDEO_EXAMPLE}],
                },
            ),
            OpenApiExample(
                "As it stood",
                response_only=True,
                value={
                    "window": "day",
                    "category": "music",
                    "generated_at": "2026-01-05T12:00:00Z",
                    "taken_at": "2026-01-04T08:55:00Z",
                    "total": 100,
                    "limit": 20,
                    "offset": 0,
                    "results": [{"rank": 1, "score": 980.0, "previous_rank": 2, "video": _VIDEO_EXAMPLE}],
                },
            ),
        ],
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        q = _query(RankingListInputSerializer, request)
        slug = q.get("category")
        try:
            if "as_of" in q:
                standing = selectors.ranking_as_of(
                    window=q["window"], as_of=q["as_of"], category_slug=slug, limit=q["limit"], offset=q["offset"]
                )
                return Response({**_page_body(standing.page), "taken_at": _iso(standing.taken_at)})
            page = selectors.ranking_top(window=q["window"], category_slug=slug, limit=q["limit"], offset=q["offset"])
        except selectors.UnknownCategory:
            raise _category_not_found(str(slug)) from None
        except selectors.SnapshotNotKept as exc:
            raise _snapshot_not_kept(exc, timezone.now()) from None
        return Response(_page_body(page))


class VideoRankingApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="rankings_video",
        summary="A video's standing in every window, with its score breakdown",
        description=(
            "Rank, score and percentile of one published video in every window, globally and in its category, "
            "and per window the counted events per event type with the weight applied. Rank, score and "
            "percentile are null in a window where the video has no score. With `window`, `standings` and "
            "`breakdown` hold that window alone."
        ),
        parameters=[VIDEO_PATH_PARAM, VideoRankingInputSerializer],
        responses={
            200: OpenApiResponse(VideoRankingOutputSerializer, description="Standings and breakdown per window."),
            400: invalid_params_response(WINDOW_INVALID_DETAILS),
            404: VIDEO_NOT_FOUND,
            503: SERVICE_UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Standing",
                response_only=True,
                value={
                    "video": _VIDEO_EXAMPLE,
                    "standings": {
                        w: {
                            "global": {"rank": 7, "score": 120.0, "percentile": 99.5, "total": 1200},
                            "category": {"rank": 2, "score": 120.0, "percentile": 98.8, "total": 85},
                        }
                        for w in WINDOWS
                    },
                    "breakdown": {
                        w: [
                            {"type": "like", "weight": 5.0, "events": 4, "units": 4.0, "score": 20.0},
                            {"type": "view", "weight": 1.0, "events": 100, "units": 100.0, "score": 100.0},
                        ]
                        for w in WINDOWS
                    },
                    "rising": {
                        "last_hour_score": 120.0,
                        "week_score": 1680.0,
                        "week_average_per_hour": 10.0,
                        "prior_per_hour": 50.0,
                        "rising_score": 2.0,
                    },
                },
            )
        ],
        tags=TAGS,
    )
    def get(self, request: Request, video_id: int) -> Response:
        window = _query(VideoRankingInputSerializer, request).get("window")
        try:
            video, standings = selectors.ranking_standings(video_id=video_id, window=window)
            breakdown = selectors.score_breakdown(video_id=video_id)
        except selectors.UnknownVideo:
            raise NotFoundError(f"No published video with id {video_id}.", {"video_id": video_id}) from None
        return Response(_video_standings_body(video, standings, breakdown))


class RankingAroundApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="rankings_around",
        summary="A video and its neighbours in a ranking",
        description=(
            "Up to `radius` entries above and below the video in one window, globally or in the video's "
            "category. The video itself has `is_target: true`. Empty when the video has no score in the window."
        ),
        parameters=[VIDEO_PATH_PARAM, RankingAroundInputSerializer],
        responses={
            200: OpenApiResponse(RankingAroundOutputSerializer, description="The video's neighbourhood."),
            400: invalid_params_response(
                WINDOW_INVALID_DETAILS, {"radius": ["Ensure this value is less than or equal to 50."]}
            ),
            404: error_response(
                404,
                "Unknown or unpublished video, a video outside the given category, or an unknown category.",
                "not_found",
                VIDEO_NOT_FOUND_EXAMPLE,
                (
                    "Video outside the category",
                    "No published video with id 42 in category 'music'.",
                    {"video_id": 42, "category": "music"},
                ),
                CATEGORY_NOT_FOUND_EXAMPLE,
            ),
            503: SERVICE_UNAVAILABLE,
        },
        tags=TAGS,
    )
    def get(self, request: Request, video_id: int) -> Response:
        q = _query(RankingAroundInputSerializer, request)
        slug = q.get("category")
        try:
            around = selectors.ranking_around(
                video_id=video_id, window=q["window"], radius=q["radius"], category_slug=slug
            )
        except selectors.UnknownCategory:
            raise _category_not_found(str(slug)) from None
        except selectors.UnknownVideo:
            raise _video_not_found(video_id, slug) from None
        results = [{**vars(entry), "is_target": entry.video["id"] == video_id} for entry in around.results]
        rank = next((r["rank"] for r in results if r["is_target"]), None)
        data = {**vars(around), "rank": rank, "results": results}
        return Response(RankingAroundOutputSerializer(data).data)


class RankingMoversApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="rankings_movers",
        summary="Biggest climbers and new entries since the last snapshot",
        description=(
            "Compares the ranking's top positions now with the last rank snapshot (taken periodically). "
            "Climbers gained places; new entries were not in the snapshot's top positions. Both lists are "
            "empty, and `since` null, before the first snapshot."
        ),
        parameters=[RankingMoversInputSerializer],
        responses={
            200: OpenApiResponse(RankingMoversOutputSerializer, description="Climbers and new entries."),
            400: invalid_params_response(WINDOW_INVALID_DETAILS, LIMIT_INVALID_DETAILS),
            404: CATEGORY_NOT_FOUND,
            503: SERVICE_UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Movers",
                response_only=True,
                value={
                    "window": "day",
                    "category": "music",
                    "since": "2026-01-05T11:55:00Z",
                    "climbers": [{"rank": 2, "previous_rank": 9, "change": 7, "score": 300.0, "video": _VIDEO_EXAMPLE}],
                    "new_entries": [
                        {"rank": 5, "previous_rank": None, "score": 150.0, "video": {**_VIDEO_EXAMPLE, "id": 43}}
                    ],
                },
            )
        ],
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        q = _query(RankingMoversInputSerializer, request)
        try:
            movers = selectors.ranking_movers(window=q["window"], category_slug=q.get("category"), limit=q["limit"])
        except selectors.UnknownCategory:
            raise _category_not_found(q["category"]) from None
        return Response(RankingMoversOutputSerializer(movers).data)


class RankHistoryApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="rankings_video_history",
        summary="A video's rank and score over time",
        description=(
            "One point per rank snapshot of one list (a window, globally or in the video's own category) since "
            "`since`, oldest first: the video's rank and score at that snapshot, both null when it was not "
            "in the positions the snapshot kept (`depth`). Snapshots are taken every "
            "`RANKING_SNAPSHOT_INTERVAL_S` (default 300 s, `snapshot_interval_s`) and kept "
            "`RANKING_SNAPSHOT_RETENTION_DAYS` (default 7 days, the default period); at most the newest "
            f"{selectors.HISTORY_MAX_POINTS} points. 404 for an unknown or unpublished video, and for a "
            "category that is not the video's."
        ),
        parameters=[VIDEO_PATH_PARAM, RankHistoryInputSerializer],
        responses={
            200: OpenApiResponse(RankHistoryOutputSerializer, description="The video's points, oldest first."),
            400: invalid_params_response(
                WINDOW_INVALID_DETAILS,
                {
                    "since": [
                        "Datetime has wrong format. Use one of these formats instead: "
                        "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                    ]
                },
            ),
            404: error_response(
                404,
                "Unknown or unpublished video, a category that is not the video's, or an unknown category.",
                "not_found",
                VIDEO_NOT_FOUND_EXAMPLE,
                (
                    "Video outside the category",
                    "No published video with id 42 in category 'gaming'.",
                    {"video_id": 42, "category": "gaming"},
                ),
                CATEGORY_NOT_FOUND_EXAMPLE,
            ),
            503: SERVICE_UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Day rank over time",
                response_only=True,
                value={
                    "video_id": 42,
                    "window": "day",
                    "category": None,
                    "since": "2026-01-05T11:45:00Z",
                    "snapshot_interval_s": 300,
                    "depth": 100,
                    "points": [
                        {"taken_at": "2026-01-05T11:45:00Z", "rank": None, "score": None},
                        {"taken_at": "2026-01-05T11:50:00Z", "rank": 57, "score": 310.0},
                        {"taken_at": "2026-01-05T11:55:00Z", "rank": 12, "score": 840.5},
                    ],
                },
            )
        ],
        tags=TAGS,
    )
    def get(self, request: Request, video_id: int) -> Response:
        q = _query(RankHistoryInputSerializer, request)
        slug = q.get("category")
        if video_id > MAX_ID:
            raise _video_not_found(video_id, None)
        try:
            history = selectors.video_rank_history(
                video_id=video_id, window=q["window"], category_slug=slug, since=q.get("since")
            )
        except selectors.UnknownCategory:
            raise _category_not_found(str(slug)) from None
        except selectors.UnknownVideo:
            raise _video_not_found(video_id, slug) from None
        # Built as plain dicts in RankHistoryOutputSerializer's field order (which documents it): through
        # DRF's fields, a week of points (2,016) took about three times as long as reading them.
        return Response(
            {
                "video_id": history.video_id,
                "window": history.window,
                "category": history.category,
                "since": _iso(history.since),
                "snapshot_interval_s": settings.RANKING_SNAPSHOT_INTERVAL_S,
                "depth": settings.RANKING_SNAPSHOT_DEPTH,
                "points": [
                    {"taken_at": _iso_utc(p.taken_at), "rank": p.rank, "score": p.score} for p in history.points
                ],
            }
        )
