"""Webhook subscriptions API: a client app, by its API key, subscribes to rank changes of one
list, lists its own subscriptions and deletes them. Thin views over rankings.services and
rankings.selectors; what a delivery looks like is documented as the POST's callback."""

from __future__ import annotations

import json
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import (
    OpenApiCallback,
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import outbound
from core.api.errors import NotFoundError
from core.api.mixins import BackendUnavailableMixin
from core.api.pagination import StrictLimitOffsetPagination, paginated_response
from core.api.schema import PAGE_INVALID, SERVICE_UNAVAILABLE, error_response
from core.api.serializers import MAX_ID, StrictSerializer
from events.api import PayloadTooLarge, SafeJSONParser
from events.auth import ApiKeyAuthentication, HasApiKey
from events.selectors import VerifiedApiKey
from leaderboard.windows import WINDOWS
from rankings import selectors, services
from rankings.models import WebhookSubscription
from videos.serializers import category_slug_field

TAGS = ["webhooks"]
MAX_N = settings.RANKING_SNAPSHOT_DEPTH
Rule = WebhookSubscription.Rule


class SubscriptionInputSerializer(StrictSerializer):
    url = serializers.URLField(
        max_length=2000,
        help_text="Where deliveries are POSTed: http or https, and (in production) a public internet address.",
    )
    window = serializers.ChoiceField(
        choices=list(WINDOWS),
        error_messages={"invalid_choice": f'"{{input}}" is not a valid window; allowed values: {", ".join(WINDOWS)}.'},
    )
    category = category_slug_field(help_text="Category slug; omit for the global ranking. Unknown slug: 400.")
    rule = serializers.ChoiceField(
        choices=Rule.choices,
        help_text=(
            "`enter_top`: a video's rank becomes n or better; `leave_top`: a video that was in the top n "
            "no longer is (fell below it, or left the list); `reach_first`: a video becomes #1."
        ),
    )
    n = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_N,
        help_text=f"The top positions, 1..{MAX_N}: required for enter_top and leave_top; 1 or omitted for reach_first.",
    )

    def validate_url(self, value: str) -> str:
        try:
            outbound.url_check(value, allow_private=settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS)
        except outbound.TargetRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_category(self, value: str) -> str:
        try:
            selectors.category_id_for(value)
        except selectors.UnknownCategory:
            raise serializers.ValidationError(f"Unknown category {value!r}.") from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        n = attrs.get("n")
        if attrs["rule"] == Rule.REACH_FIRST:
            if n not in (None, 1):
                raise serializers.ValidationError({"n": ["reach_first is about #1: omit n or send 1."]})
            attrs["n"] = 1
        elif n is None:
            raise serializers.ValidationError({"n": [f"Required for {attrs['rule']}."]})
        return attrs


class SubscriptionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    window = serializers.CharField()
    category = serializers.CharField(allow_null=True, help_text="Category slug; null for the global ranking.")
    rule = serializers.ChoiceField(choices=Rule.choices)
    n = serializers.IntegerField()
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        if isinstance(instance, WebhookSubscription):
            instance = {**vars(instance), "id": instance.pk, "category": instance.category_slug or None}
        return dict(super().to_representation(instance))


class SubscriptionCreatedOutputSerializer(SubscriptionOutputSerializer):
    secret = serializers.CharField(
        help_text="Signs every delivery (X-Signature). Shown only in this answer: store it now; it cannot be read again."
    )


_DELIVERY = {
    "idempotency_key": "3f0b8c1e-6f2a-4d4b-9a51-5c7e2d9b8a10",
    "subscription_id": 17,
    "rule": "enter_top",
    "n": 10,
    "window": "day",
    "category": "music",
    "video_id": 42,
    "rank": 7,
    "previous_rank": 15,
    "score": 1520.0,
    "detected_at": "2026-01-05T12:03:21.518Z",
}


class WebhookDeliveryBodySerializer(serializers.Serializer):
    """The JSON body of a delivery (documentation of the callback; never parsed here)."""

    idempotency_key = serializers.UUIDField(help_text="The same in every attempt of a delivery: process each once.")
    subscription_id = serializers.IntegerField()
    rule = serializers.ChoiceField(choices=Rule.choices)
    n = serializers.IntegerField()
    window = serializers.CharField()
    category = serializers.CharField(allow_null=True)
    video_id = serializers.IntegerField()
    rank = serializers.IntegerField(
        allow_null=True, help_text="Rank now; null when the video left the positions read (leave_top)."
    )
    previous_rank = serializers.IntegerField(allow_null=True, help_text="Rank at the previous reading; null if absent.")
    score = serializers.FloatField(allow_null=True, help_text="Score now; null with rank.")
    detected_at = serializers.DateTimeField(
        help_text="When the change was seen; it happened since the previous reading, at most one interval before."
    )


_KEY_ERRORS = {
    401: error_response(
        401,
        "API key missing, malformed or unknown.",
        "not_authenticated",
        (
            "Missing key",
            "An API key is required: send 'Authorization: Api-Key <key>' or 'X-API-Key: <key>'.",
            {},
        ),
    ),
    403: error_response(
        403,
        "API key revoked or expired.",
        "api_key_revoked",
        ("Revoked key", "This API key has been revoked; ask for a new one.", {}),
    ),
}
_SUBSCRIPTION = {
    "id": 17,
    "url": "https://hooks.example.com/rankings",
    "window": "day",
    "category": "music",
    "rule": "enter_top",
    "n": 10,
    "created_at": "2026-01-05T12:00:00Z",
}

DELIVERY_CALLBACK = OpenApiCallback(
    "rankChange",
    "{$request.body#/url}",
    extend_schema(
        summary="A rule fired: the delivery POSTed to your URL",
        description=(
            "Sent within a few seconds of the change (lists with subscriptions are read every "
            "`WEBHOOKS_EVALUATE_INTERVAL_S`, default 1 s, and compared with the previous reading). Headers: "
            "`Content-Type: application/json`; `X-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed "
            "with the subscription's secret>` (verify it on the bytes as received, before parsing, with a "
            "constant-time comparison); `Idempotency-Key` (also in the body; the same in every attempt of "
            "this delivery); `X-Delivery-Attempt` (1, 2, ...). Answer any 2xx quickly. Anything else, a "
            "timeout (`WEBHOOKS_TIMEOUT_S`, default 5 s) or a refused connection is retried with exponential "
            "backoff and jitter (waits of 1-2 s, 2-4 s, ... up to 60-120 s) until "
            "`WEBHOOKS_RETRY_FOR_S` (default 15 minutes) after the change, then given up. Redirects are "
            "not followed. Example body:\n\n```json\n" + json.dumps(_DELIVERY, indent=2) + "\n```"
        ),
        request=WebhookDeliveryBodySerializer,
        responses={"2XX": OpenApiResponse(description="Received; any 2xx counts, the body is ignored.")},
    ),
)


class SubscriptionLimit(exceptions.APIException):
    """The request is fine; the key's state refuses it (a 409, so a client knows to delete first)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "subscription_limit"

    def __init__(self, limit: int) -> None:
        super().__init__(f"At most {limit} subscriptions per API key; delete one first.")
        self.extra_details = {"limit": limit}


def _key_id(request: Request) -> str:
    return cast(VerifiedApiKey, request.auth).id  # HasApiKey let the request through


class SubscriptionListApi(BackendUnavailableMixin, APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    parser_classes = [SafeJSONParser]
    pagination_class = StrictLimitOffsetPagination

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            # Django raises this while DRF reads the body; unhandled it would be a 500.
            exc = PayloadTooLarge(f"The request body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
        return super().handle_exception(exc)

    @extend_schema(
        operation_id="subscriptions_create",
        summary="Subscribe to rank changes of a list (webhook)",
        description=(
            "Registers a URL to be told when a rule fires on one ranking list (a window, globally or in one "
            "category): `enter_top`, `leave_top` (with `n`) or `reach_first`. The subscription belongs to the "
            "API key that creates it. The answer carries a `secret`, shown this once: every delivery is signed "
            "with it (see the callback). A subscription fires for changes after it was created. Only http and "
            "https URLs; in production a host that resolves to a loopback, private or link-local address is "
            f"refused (400 naming `url`), and checked again before every delivery. At most "
            f"{settings.WEBHOOKS_MAX_PER_KEY} subscriptions per key (409 beyond)."
        ),
        request=SubscriptionInputSerializer,
        responses={
            201: OpenApiResponse(SubscriptionCreatedOutputSerializer, description="Subscribed; keep the secret."),
            400: error_response(
                400,
                "Malformed JSON, or invalid fields; details name each bad field.",
                "invalid",
                (
                    "Private address",
                    "The request is invalid; see details.",
                    {
                        "url": [
                            "The host 10.0.0.7 resolves to 10.0.0.7, a private address; only public internet "
                            "addresses are allowed."
                        ]
                    },
                ),
                ("Missing n", "The request is invalid; see details.", {"n": ["Required for enter_top."]}),
            ),
            409: error_response(
                409,
                f"The key already has {settings.WEBHOOKS_MAX_PER_KEY} subscriptions (the most it may have).",
                "subscription_limit",
                (
                    "Too many",
                    "At most 100 subscriptions per API key; delete one first.",
                    {"limit": 100},
                ),
            ),
            **_KEY_ERRORS,
            413: error_response(
                413,
                "Body larger than the configured limit (2 MiB by default).",
                "payload_too_large",
                ("Too large", "The request body exceeds 2097152 bytes.", {}),
            ),
            415: error_response(
                415,
                "Content-Type is not application/json.",
                "unsupported_media_type",
                ("Wrong content type", 'Unsupported media type "text/plain" in request.', {}),
            ),
            503: SERVICE_UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Enter the top 10",
                value={
                    "url": "https://hooks.example.com/rankings",
                    "window": "day",
                    "category": "music",
                    "rule": "enter_top",
                    "n": 10,
                },
                request_only=True,
            ),
            OpenApiExample(
                "Subscribed",
                value={**_SUBSCRIPTION, "secret": "9c1e5b0d4f3a28e7c6b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
        callbacks=[DELIVERY_CALLBACK],
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        params = SubscriptionInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            subscription = services.webhook_subscription_create(
                api_key_id=_key_id(request),
                url=params.validated_data["url"],
                window=params.validated_data["window"],
                category_slug=params.validated_data.get("category"),
                rule=params.validated_data["rule"],
                n=params.validated_data["n"],
            )
        except services.SubscriptionLimitReached:
            raise SubscriptionLimit(settings.WEBHOOKS_MAX_PER_KEY) from None
        data = {**SubscriptionOutputSerializer(subscription).data, "secret": subscription.secret}
        return Response(SubscriptionCreatedOutputSerializer(data).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="subscriptions_list",
        summary="The API key's webhook subscriptions",
        description="The subscriptions created with this API key, oldest first; never their secrets.",
        responses={
            200: SubscriptionOutputSerializer(many=True),
            400: PAGE_INVALID,
            **_KEY_ERRORS,
            503: SERVICE_UNAVAILABLE,
        },
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            pagination_class=self.pagination_class,
            serializer_class=SubscriptionOutputSerializer,
            queryset=selectors.webhook_subscription_list(api_key_id=_key_id(request)),
            request=request,
            view=self,
        )


class SubscriptionDetailApi(BackendUnavailableMixin, APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]

    @extend_schema(
        operation_id="subscriptions_delete",
        summary="Delete one of the API key's webhook subscriptions",
        description=(
            "Stops the subscription at once, with any delivery still being retried. Another key's subscription "
            "answers 404, like one that does not exist."
        ),
        parameters=[OpenApiParameter("subscription_id", int, OpenApiParameter.PATH, description="Subscription id.")],
        responses={
            204: OpenApiResponse(description="Deleted."),
            **_KEY_ERRORS,
            404: error_response(
                404,
                "This API key has no subscription with this id.",
                "not_found",
                ("Unknown subscription", "No subscription 17 for this API key.", {"subscription_id": 17}),
            ),
            503: SERVICE_UNAVAILABLE,
        },
        tags=TAGS,
    )
    def delete(self, request: Request, subscription_id: int) -> Response:
        if subscription_id > MAX_ID or not services.webhook_subscription_delete(
            subscription_id=subscription_id, api_key_id=_key_id(request)
        ):
            raise NotFoundError(
                f"No subscription {subscription_id} for this API key.", {"subscription_id": subscription_id}
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
