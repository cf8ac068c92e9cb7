"""OpenAPI helpers: documented error responses and the rules the schema must state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from core.api.errors import ErrorOutputSerializer, error_body
from core.api.pagination import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema


def error_response(status: int, description: str, code: str, *examples: tuple[str, str, Any]) -> OpenApiResponse:
    """One documented error response; each example is (name, message, details)."""
    return OpenApiResponse(
        response=ErrorOutputSerializer,
        description=description,
        examples=[
            OpenApiExample(
                name,
                value=error_body(code, message, details),
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

PAGE_INVALID = invalid_params_response({"limit": [f"Ensure this value is less than or equal to {MAX_PAGE_SIZE}."]})


class StrictSerializerSchema(OpenApiSerializerExtension):
    """Request bodies of StrictSerializer subclasses state what those serializers refuse.

    They answer 400 "Unknown field." to any field they do not declare, and a
    list field with ``allow_empty=False`` refuses ``[]``; drf-spectacular
    renders neither, so the schema would promise that both are fine.
    Registered on import of this module, which the URL configuration causes before any schema is built.
    """

    target_class = "core.api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema = dict(auto_schema._map_serializer(self.target, direction, bypass_extensions=True))
        if direction != "request":
            return schema
        schema["additionalProperties"] = False
        properties = schema.get("properties", {})
        for name, field in self.target.fields.items():
            if isinstance(field, serializers.ListField) and not field.allow_empty and name in properties:
                properties[name].setdefault("minItems", 1)
        return schema


def schema_request_bodies_required(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Postprocessing hook: every request body of this API is required.

    An empty POST is a 400, never a no-op; drf-spectacular cannot infer that
    for a body documented as a choice of shapes (one event or a batch).
    """
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if body:
                body["required"] = True
    return result
