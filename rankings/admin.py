"""Admin of webhooks: every client's subscriptions (never their secrets) and each delivery with its attempts.

Read-only: clients create and delete subscriptions through the API with their key; staff look,
and may delete a subscription that misbehaves.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from rankings.models import WebhookAttempt, WebhookDelivery, WebhookSubscription


class _ReadOnly(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(_ReadOnly):
    list_display = ["id", "api_key", "url", "window", "list_scope", "rule", "n", "created_at", "deliveries_by_status"]
    list_filter = ["rule", "window"]
    search_fields = ["url", "api_key__name", "api_key__prefix"]
    exclude = ["secret"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookSubscription]:
        status = WebhookDelivery.Status
        return (
            super()
            .get_queryset(request)
            .select_related("api_key")
            .annotate(
                delivered=Count("deliveries", filter=Q(deliveries__status=status.DELIVERED)),
                pending=Count("deliveries", filter=Q(deliveries__status=status.PENDING)),
                failed=Count("deliveries", filter=Q(deliveries__status=status.FAILED)),
            )
        )

    @admin.display(description="list")
    def list_scope(self, obj: WebhookSubscription) -> str:
        return obj.category_slug or "global"

    @admin.display(description="deliveries")
    def deliveries_by_status(self, obj: Any) -> str:
        url = reverse("admin:rankings_webhookdelivery_changelist") + f"?subscription__id__exact={obj.pk}"
        return format_html(
            '<a href="{}">{} delivered, {} pending, {} failed</a>', url, obj.delivered, obj.pending, obj.failed
        )


class WebhookAttemptInline(admin.TabularInline[WebhookAttempt, WebhookDelivery]):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "started_at", "duration_ms", "status_code", "error")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly):
    list_display = [
        "id",
        "subscription",
        "video_id",
        "rank",
        "previous_rank",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "subscription__rule"]
    search_fields = ["=idempotency_key", "=video_id", "subscription__url"]
    list_select_related = ["subscription"]
    inlines = [WebhookAttemptInline]
