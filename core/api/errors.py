"""Every API error has one shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is unavailable; retry later."
    default_code = "service_unavailable"
    # Sent as Retry-After, so clients back off instead of hammering a store that is down.
    wait = 5


class NotFoundError(exceptions.NotFound):
    """404 whose body says what was not found (``details``), not only that something was not."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.extra_details = details


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid`, `not_found`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.JSONField(
        help_text="For `invalid`: field name -> list of messages. Otherwise context such as the unknown id or slug."
    )


# The error shape every endpoint shares, as error_body builds it (no docstring: it would become schema text).
class ErrorOutputSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


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


API_NOT_FOUND_ROUTE = "api-not-found"


def _endpoint_with_slash(request: HttpRequest) -> str | None:
    """The endpoint the client most likely meant when it left out the trailing slash."""
    if request.path_info.endswith("/"):
        return None
    try:
        match = resolve(request.path_info + "/")
    except Resolver404:
        return None
    return None if match.url_name == API_NOT_FOUND_ROUTE else request.path + "/"


def _api_not_found_response(request: HttpRequest) -> JsonResponse:
    details: dict[str, Any] = {"path": request.path}
    message = "No endpoint matches this URL."
    meant = _endpoint_with_slash(request)
    if meant is not None:
        details["did_you_mean"] = meant
        message = f"No endpoint matches this URL; did you mean {meant}?"
    return JsonResponse(error_body("not_found", message, details), status=404)


@csrf_exempt  # it only ever answers 404; without this a POST would get the CSRF failure page instead
def api_not_found(request: HttpRequest) -> HttpResponse:
    """The last route under /api/: any URL there that no endpoint matches, whatever the method.

    handler404 alone is not enough: with DEBUG on, Django answers an unmatched URL
    with its technical HTML page and never calls handler404. Being a route, this
    also turns off APPEND_SLASH for /api/ (the URL without its slash now matches
    something); that redirect lost a POST's body, and with DEBUG on a POST got a 500,
    so the 404 names the endpoint with the slash instead.
    """
    return _api_not_found_response(request)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 (e.g. an Http404 outside DRF): JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return _api_not_found_response(request)
    return defaults.page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    """An unhandled exception: the error shape under /api/, so clients can parse every answer."""
    if _is_api(request):
        body = error_body("server_error", "Internal error; it has been logged. Retry later or report the X-Request-ID.")
        return JsonResponse(body, status=500)
    return defaults.server_error(request)
