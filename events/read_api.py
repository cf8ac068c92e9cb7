"""Read-only list of event types: what each event is worth and how it is deduplicated."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.mixins import BackendUnavailableMixin
from core.api.pagination import StrictLimitOffsetPagination, paginated_response
from core.api.schema import PAGE_INVALID, SERVICE_UNAVAILABLE
from events import selectors
from events.models import EventType


class EventTypeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = EventType
        fields = ["name", "weight", "dedupe_window_seconds", "description"]
        read_only_fields = fields
        extra_kwargs = {
            "weight": {"help_text": "Score added per unit of this event (may be negative)."},
            "dedupe_window_seconds": {
                "help_text": "The same user's events of this type on one video count once per window (0: no dedupe)."
            },
        }


class EventTypeListApi(BackendUnavailableMixin, APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(
        operation_id="event_types_list",
        summary="Event types and their weights",
        description="A video's score in a window is the sum over event types of weight x units.",
        responses={200: EventTypeOutputSerializer(many=True), 400: PAGE_INVALID, 503: SERVICE_UNAVAILABLE},
        tags=["catalogue"],
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            pagination_class=self.pagination_class,
            serializer_class=EventTypeOutputSerializer,
            queryset=selectors.event_type_list(),
            request=request,
            view=self,
        )
