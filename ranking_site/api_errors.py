"""Every API error has one shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is unavailable; retry later."
    default_code = "service_unavailable"
    # Sent as Retry-After, so clients back off instead of hammering a store that is down.
    wait = 5


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def _code_for(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return str(getattr(exc, "default_code", "error"))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", "The request is invalid; see details.", exc.detail)
    else:
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else exc.default_detail
        extra = getattr(exc, "extra_details", None)
        body = error_body(_code_for(exc), str(message), extra)
    response.data = body
    return response


# --- Django's error views (handler404 / handler500), outside DRF ------------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A URL no route matches (e.g. /api/v1/videos/abc/): JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse(
            error_body("not_found", "No endpoint matches this URL.", {"path": request.path}), status=404
        )
    return defaults.page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    """An unhandled exception: the error shape under /api/, so clients can parse every answer."""
    if _is_api(request):
        body = error_body("server_error", "Internal error; it has been logged. Retry later or report the X-Request-ID.")
        return JsonResponse(body, status=500)
    return defaults.server_error(request)


# --- the schema states the same rule -----------------------------------------------------


class StrictSerializerSchema(OpenApiSerializerExtension):
    """Request bodies of StrictSerializer subclasses state what those serializers refuse.

    They answer 400 "Unknown field." to any field they do not declare, and a
    list field with ``allow_empty=False`` refuses ``[]``; drf-spectacular
    renders neither, so the schema would promise that both are fine.
    Registered on import, which ranking_site.urls causes before any schema is built.
    """

    target_class = "events.serializers.StrictSerializer"
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
