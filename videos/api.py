"""Read-only catalogue API: videos and categories, straight from Postgres.

Also holds the small pieces every public read endpoint shares (strict
pagination, 503 on an unreachable backing store, documented error responses),
so the rankings and event-type endpoints behave the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from redis.exceptions import RedisError
from rest_framework import exceptions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ranking_site.api_errors import ServiceUnavailable
from videos import selectors
from videos.serializers import (
    CategoryOutputSerializer,
    ErrorOutputSerializer,
    VideoListInputSerializer,
    VideoOutputSerializer,
)

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100


# --- shared by the read endpoints -----------------------------------------------


class NotFoundError(exceptions.NotFound):
    """404 whose body says what was not found (``details``), not only that something was not."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.extra_details = details


class BackendUnavailableMixin:
    """Turn a lost connection to Redis or Postgres into a 503 in the error shape.

    Without it DRF lets these through and the client sees a bare 500, which
    says "bug" where the truth is "retry later".
    """

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RedisError | OperationalError | InterfaceError):
            store = "rankings store (Redis)" if isinstance(exc, RedisError) else "database"
            logger.warning("%s unavailable: %s", store, exc)
            exc = ServiceUnavailable(f"The {store} is unavailable; retry later.")
        return super().handle_exception(exc)  # type: ignore[misc]


class _PageInputSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False)
    offset = serializers.IntegerField(min_value=0, required=False)


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset paging that rejects a bad ``limit`` or ``offset`` with a 400.

    DRF's own class silently falls back to the default page or clamps the
    limit; a client asking for 500 rows would then page wrongly without
    noticing. The rankings endpoints reject the same input, so the whole API
    agrees.
    """

    default_limit = 20
    max_limit = MAX_PAGE_SIZE

    def _validated(self, request: Request) -> dict[str, int]:
        cached: dict[str, int] | None = getattr(request, "_page_params", None)
        if cached is None:
            data = {k: request.query_params[k] for k in ("limit", "offset") if k in request.query_params}
            serializer = _PageInputSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            cached = dict(serializer.validated_data)
            request._page_params = cached  # type: ignore[attr-defined]
        return cached

    def get_limit(self, request: Request) -> int:
        return self._validated(request).get("limit", self.default_limit)

    def get_offset(self, request: Request) -> int:
        return self._validated(request).get("offset", 0)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        bounds = {
            "limit": {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
            "offset": {"minimum": 0, "default": 0},
        }
        for param in params:
            param["schema"].update(bounds.get(param["name"], {}))
        return params


def paginated_response(
    *, pagination_class: type[LimitOffsetPagination], serializer_class: type[serializers.Serializer],
    queryset: QuerySet[Any], request: Request, view: APIView,
) -> Response:  # fmt: skip
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    assert page is not None  # a default limit is always set
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def error_response(status: int, description: str, code: str, *examples: tuple[str, str, Any]) -> OpenApiResponse:
    """One documented error response; each example is (name, message, details)."""
    return OpenApiResponse(
        response=ErrorOutputSerializer,
        description=description,
        examples=[
            OpenApiExample(
                name,
                value={"error": {"code": code, "message": message, "details": details}},
                response_only=True,
                status_codes=[str(status)],
            )
            for name, message, details in examples
        ],
    )


def invalid_params_response(*details_examples: dict[str, list[str]]) -> OpenApiResponse:
    """400 for bad query parameters: details map each bad field to its messages."""
    return error_response(
        400,
        "A query parameter is invalid; details name each bad field.",
        "invalid",
        *[
            (f"Invalid {', '.join(details)}", "The request is invalid; see details.", details)
            for details in details_examples
        ],
    )


SERVICE_UNAVAILABLE = error_response(
    503,
    "Redis or Postgres is unreachable; retry later.",
    "service_unavailable",
    ("Store down", "The rankings store (Redis) is unavailable; retry later.", {}),
)

PAGE_INVALID = invalid_params_response({"limit": ["Ensure this value is less than or equal to 100."]})


# --- videos --------------------------------------------------------------------


class VideoListApi(BackendUnavailableMixin, APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(
        operation_id="videos_list",
        summary="Published videos",
        description="Published videos, lowest id first. Hidden and removed videos are never listed.",
        parameters=[VideoListInputSerializer],
        responses={
            200: VideoOutputSerializer(many=True),
            400: PAGE_INVALID,
            404: error_response(
                404,
                "The category filter names no category.",
                "not_found",
                ("Unknown category", "Unknown category 'jazz'.", {"category": "jazz"}),
            ),
            503: SERVICE_UNAVAILABLE,
        },
        tags=["catalogue"],
    )
    def get(self, request: Request) -> Response:
        params = VideoListInputSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        slug = params.validated_data.get("category")
        if slug is not None and not selectors.category_exists(slug=slug):
            raise NotFoundError(f"Unknown category {slug!r}.", {"category": slug})
        return paginated_response(
            pagination_class=self.pagination_class,
            serializer_class=VideoOutputSerializer,
            queryset=selectors.video_list(category_slug=slug),
            request=request,
            view=self,
        )


class VideoDetailApi(BackendUnavailableMixin, APIView):
    @extend_schema(
        operation_id="videos_retrieve",
        summary="One published video",
        description="A published video's catalogue entry. Hidden and removed videos answer 404.",
        parameters=[OpenApiParameter("video_id", int, OpenApiParameter.PATH, description="Video id.")],
        responses={
            200: OpenApiResponse(VideoOutputSerializer, description="The video."),
            404: error_response(
                404,
                "No published video has this id (unknown, hidden or removed).",
                "not_found",
                ("Unknown video", "No published video with id 42.", {"video_id": 42}),
            ),
            503: SERVICE_UNAVAILABLE,
        },
        tags=["catalogue"],
    )
    def get(self, request: Request, video_id: int) -> Response:
        video = selectors.video_get(video_id=video_id)
        if video is None:
            raise NotFoundError(f"No published video with id {video_id}.", {"video_id": video_id})
        return Response(VideoOutputSerializer(video).data)


class CategoryListApi(BackendUnavailableMixin, APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(
        operation_id="categories_list",
        summary="Active categories",
        description="Active categories by name. Their slugs are the `category` filter of the other endpoints.",
        responses={200: CategoryOutputSerializer(many=True), 400: PAGE_INVALID, 503: SERVICE_UNAVAILABLE},
        tags=["catalogue"],
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            pagination_class=self.pagination_class,
            serializer_class=CategoryOutputSerializer,
            queryset=selectors.category_list(),
            request=request,
            view=self,
        )
