"""Limit/offset paging that refuses bad input, shared by every list endpoint."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.serializers import StrictIntegerField

MAX_PAGE_SIZE = 100
# Past the end a page is empty, so any bound above the longest list would do. This one is far
# above a catalogue of millions of videos and far below where a backend stops reading the
# number exactly (Lua numbers are doubles: 2^53; Redis and Postgres offsets: 2^63).
MAX_OFFSET = 1_000_000_000


class _PageInputSerializer(serializers.Serializer):
    limit = StrictIntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False)
    offset = StrictIntegerField(min_value=0, max_value=MAX_OFFSET, required=False)


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset paging that rejects a bad ``limit`` or ``offset`` with a 400.

    DRF's own class silently falls back to the default page or clamps the
    limit; a client asking for 500 rows would then page wrongly without
    noticing. An offset above MAX_OFFSET is refused too, naming the bound. The
    rankings endpoints reject the same input, so the whole API agrees.
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
            "offset": {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
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
