"""HTTP API of the events app: POST /api/v1/events/."""

from __future__ import annotations

import re
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]  # stubs predate it
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import json as drf_json
from rest_framework.views import APIView

from core.api.errors import ErrorOutputSerializer, error_body
from core.api.mixins import BackendUnavailableMixin
from core.middleware import REQUEST_ID_HEADER, request_id_from
from events.auth import ApiKeyAuthentication, HasApiKey, IngestIpThrottle, IngestKeyThrottle
from events.ingest import events_ingest
from events.selectors import VerifiedApiKey
from events.serializers import (
    EventBatchInputSerializer,
    EventInputSerializer,
    IngestAcceptedOutputSerializer,
)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


# A \uD800-\uDFFF escape: half of a UTF-16 surrogate pair, fine in a pair (an escaped emoji), not alone.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(data: Any) -> bool:
    """Whether any string of the parsed body, key or value, holds an unpaired surrogate (is not text)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            strings: Any = item.keys()
        elif isinstance(item, list):
            stack.extend(item)
            continue
        elif isinstance(item, str):
            strings = (item,)
        else:
            continue
        for text in strings:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


class SafeJSONParser(JSONParser):
    """JSONParser that answers 400, not 500, to JSON it decodes but the API cannot handle.

    Nested deeper than the decoder's recursion limit; or holding an unpaired
    surrogate escape such as "\\ud800": Python's decoder accepts it, but the string is
    not Unicode text, so it could be neither produced to Kafka nor echoed back in an
    error (an unknown field named with one made the error response itself fail).
    The body is decoded in one piece (JSONParser reads it whole too), so the check can scan its text.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding)
            data = drf_json.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except ValueError as exc:  # UnicodeDecodeError included
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
        # The scans keep the walk off the common path: most bodies hold no backslash at all (a one-pass
        # byte search), and only a body with a surrogate escape is walked.
        if "\\" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(data):
            raise exceptions.ParseError(
                "JSON parse error - a string holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff); "
                "send valid Unicode."
            )
        return data


def request_id_for(request: Request) -> str:
    """The caller's X-Request-ID when it is a plain token, else a new uuid4 (the middleware's rule)."""
    rid = getattr(request, "_ingest_request_id", None)
    if rid is None:
        rid = request_id_from(request)
        request._ingest_request_id = rid  # type: ignore[attr-defined]
    return str(rid)


def _example(name: str, status_code: int, body: Any, summary: str = "") -> OpenApiExample:
    return OpenApiExample(name, value=body, status_codes=[str(status_code)], response_only=True, summary=summary)


_ERROR = ErrorOutputSerializer
_NOT_JSON = "Expecting value: line 1 column 1 (char 0)"
_TOO_LARGE = "The request body exceeds 2097152 bytes; send smaller batches."
_EVENT_IDS = ["6b0f6c2e-8a3e-4b8e-9a59-2d1f0c7a9e11", "0c9a3f7e-1d2b-4c5a-8e6f-7a8b9c0d1e2f"]

INGEST_SCHEMA = extend_schema(
    operation_id="events_ingest",
    summary="Send engagement events",
    description=(
        'One event object, or `{"events": [...]}` with 1 to 1000 events. Every event is validated '
        "first (type known, video exists and is published, fields well-formed); if any is invalid "
        "nothing is accepted and the 400 lists each bad item by index and field. Valid events are "
        "written to Kafka (acks=all) before the 202. On 503 retry with the same `event_id`s: an id "
        "is counted once however often it is sent. An `event_id` repeated inside one request (e.g. an "
        "offline queue flushed twice) is accepted too and counted once: its first occurrence is the one "
        "produced and counted, later ones are ignored. `accepted` is the number of events in the request, "
        "repeats included, and `event_ids` lists one id per event in request order, so a repeated id "
        "appears at each of its positions. Rate limited per API key and per client IP."
    ),
    tags=["events"],
    parameters=[
        OpenApiParameter(
            REQUEST_ID_HEADER,
            location=OpenApiParameter.HEADER,
            required=False,
            description="Correlation id (letters, digits, . _ : -, at most 128); one is generated when absent. "
            "Echoed in the response header and attached to every produced event.",
        ),
        OpenApiParameter(
            REQUEST_ID_HEADER,
            location=OpenApiParameter.HEADER,
            response=True,
            description="The request's correlation id: the caller's, or a generated uuid4.",
        ),
        OpenApiParameter(
            "Retry-After",
            location=OpenApiParameter.HEADER,
            type=int,
            response=[429, 503],
            description="Seconds to wait before retrying.",
        ),
        OpenApiParameter(
            "WWW-Authenticate",
            location=OpenApiParameter.HEADER,
            response=[401],
            description="Api-Key",
        ),
    ],
    request=PolymorphicProxySerializer(
        component_name="EventIngestRequest",
        serializers=[EventInputSerializer, EventBatchInputSerializer],
        resource_type_field_name=None,
    ),
    responses={
        202: OpenApiResponse(IngestAcceptedOutputSerializer, description="Every event was produced to Kafka."),
        400: OpenApiResponse(_ERROR, description="Malformed JSON, wrong shape, or at least one invalid event."),
        401: OpenApiResponse(_ERROR, description="API key missing, malformed or unknown."),
        403: OpenApiResponse(_ERROR, description="API key revoked or expired."),
        413: OpenApiResponse(_ERROR, description="Body larger than the configured limit (2 MiB by default)."),
        415: OpenApiResponse(_ERROR, description="Content-Type is not application/json."),
        429: OpenApiResponse(_ERROR, description="Rate limit reached; see the Retry-After header (seconds)."),
        503: OpenApiResponse(
            _ERROR,
            description="Kafka did not acknowledge, or the database (API keys, catalogue) is unavailable; "
            "nothing accepted. Retry the same ids after Retry-After seconds.",
        ),
    },
    examples=[
        OpenApiExample(
            "Single event",
            value={"video_id": 42, "type": "view", "user_id": "u-981"},
            request_only=True,
        ),
        OpenApiExample(
            "Batch",
            value={
                "events": [
                    {"event_id": _EVENT_IDS[0], "video_id": 42, "type": "like", "user_id": "u-981"},
                    # No occurred_at: any fixed time would fall out of the accepted 7 days and make
                    # the example a 400 (tests/api/test_schema.py posts every request example).
                    {"event_id": _EVENT_IDS[1], "video_id": 7, "type": "watch", "watch_seconds": 93.5},
                ]
            },
            request_only=True,
        ),
        _example("Accepted", 202, {"accepted": 2, "event_ids": _EVENT_IDS}),
        _example(
            "Invalid items",
            400,
            error_body(
                "invalid",
                "The request is invalid; see details.",
                {
                    "events": {
                        "1": {"watch_seconds": ["Required for events of type 'watch'."]},
                        "3": {"video_id": ["Unknown or unpublished video 99."]},
                    }
                },
            ),
            summary="Batch form: details keyed by item index, then field",
        ),
        _example(
            "Invalid single event",
            400,
            error_body(
                "invalid",
                "The request is invalid; see details.",
                {"type": ["Unknown event type 'vue'. Known types: comment, like, share, view, watch."]},
            ),
            summary="Single form: details keyed by field",
        ),
        _example(
            "Not JSON", 400, error_body("parse_error", "JSON parse error - Expecting value: line 1 column 1 (char 0)")
        ),
        _example(
            "Missing key",
            401,
            error_body(
                "not_authenticated",
                "An API key is required: send 'Authorization: Api-Key <key>' or 'X-API-Key: <key>'.",
            ),
        ),
        _example("Unknown key", 401, error_body("authentication_failed", "Invalid API key.")),
        _example(
            "Revoked key", 403, error_body("api_key_revoked", "This API key has been revoked; ask for a new one.")
        ),
        _example(
            "Too large",
            413,
            error_body("payload_too_large", "The request body exceeds 2097152 bytes; send smaller batches."),
        ),
        _example(
            "Wrong content type",
            415,
            error_body("unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
        ),
        _example("Throttled", 429, error_body("throttled", "Request was throttled. Expected available in 12 seconds.")),
        _example(
            "Kafka unavailable",
            503,
            error_body(
                "kafka_unavailable",
                "Kafka is unavailable; nothing was accepted. Retry later with the same event_ids.",
                {"event_ids": _EVENT_IDS},
            ),
        ),
        _example(
            "Database unavailable",
            503,
            error_body("service_unavailable", "The database is unavailable; retry later."),
        ),
    ],
)


class EventIngestApi(BackendUnavailableMixin, APIView):
    # The mixin: PostgreSQL down (a restart, a failover) is a 503 the client retries with
    # the same ids, as Kafka down is; a bare 500 would read as "this request is wrong".
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    throttle_classes = [IngestIpThrottle, IngestKeyThrottle]
    parser_classes = [SafeJSONParser]

    @INGEST_SCHEMA
    def post(self, request: Request) -> Response:
        api_key = cast(VerifiedApiKey, request.auth)  # HasApiKey let the request through
        result = events_ingest(payload=request.data, api_key=api_key, request_id=request_id_for(request))
        output = IngestAcceptedOutputSerializer({"accepted": result.accepted, "event_ids": result.event_ids})
        return Response(output.data, status=status.HTTP_202_ACCEPTED)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            # Django raises this while DRF reads the body; unhandled it would be a 500.
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            exc = PayloadTooLarge(f"The request body exceeds {limit} bytes; send smaller batches.")
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response[REQUEST_ID_HEADER] = request_id_for(request)
        return response
