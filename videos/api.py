"""Read-only catalogue API: videos and categories, straight from Postgres."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import NotFoundError
from core.api.mixins import BackendUnavailableMixin
from core.api.pagination import StrictLimitOffsetPagination, paginated_response
from core.api.schema import PAGE_INVALID, SERVICE_UNAVAILABLE, error_response
from videos import selectors
from videos.serializers import CategoryOutputSerializer, VideoListInputSerializer, VideoOutputSerializer

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
