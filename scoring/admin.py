"""Admin of what scoring owns (dead letters, batches left behind) and of the rebuild that applies a weight change."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django_object_actions import DjangoObjectActions, action

from events.admin import EventTypeAdmin
from events.models import EventType
from scoring import tasks
from scoring.ledger import batches_retry, dead_letter_replay
from scoring.models import Batch, DeadLetter

REBUILD_LABEL = "Rebuild rankings"

# Weights are the events app's; re-scoring history with them is scoring's, so scoring extends that admin.
admin.site.unregister(EventType)


@admin.register(EventType)
class EventTypeScoringAdmin(DjangoObjectActions, EventTypeAdmin):
    # A button on the list, not an action: a rebuild concerns every event type, none is to be selected.
    changelist_actions = ["rebuild_rankings"]

    def get_changelist_actions(self, request: HttpRequest) -> list[str]:
        # Re-scoring all history is for those who may change the weights.
        return list(self.changelist_actions) if self.has_change_permission(request) else []

    def save_model(self, request: HttpRequest, obj: EventType, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "weight" in form.changed_data:
            self.message_user(
                request,
                format_html(
                    "Weight of '{}' changed. New events use it now; press '{}' on the "
                    '<a href="{}">event types list</a> to re-score past events with it.',
                    obj.name,
                    REBUILD_LABEL,
                    reverse("admin:events_eventtype_changelist"),
                ),
                messages.WARNING,
            )

    @action(
        label=REBUILD_LABEL,
        description="Re-score every ranking from the hourly counters with the current weights",
        methods=("POST",),
        button_type="form",
    )
    def rebuild_rankings(self, request: HttpRequest, queryset: QuerySet[EventType]) -> None:
        if not self.has_change_permission(request):
            raise PermissionDenied
        tasks.rankings_rebuild.delay()
        self.message_user(request, "Rankings rebuild queued; lists are swapped in when it completes.", messages.SUCCESS)


class DeadLetterStateFilter(admin.SimpleListFilter):
    """Pending letters still wait for a replay; replayed ones were sent through the pipeline again."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("pending", "Pending"), ("replayed", "Replayed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "pending":
            return queryset.filter(replayed_at__isnull=True)
        if self.value() == "replayed":
            return queryset.filter(replayed_at__isnull=False)
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin[DeadLetter]):
    list_display = ["created_at", "reason", "topic", "partition", "offset", "replayed_at"]
    list_filter = [DeadLetterStateFilter, "reason"]
    search_fields = ["raw", "reason"]
    readonly_fields = ["created_at", "reason", "raw", "topic", "partition", "offset", "replayed_at"]
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay selected dead letters through the pipeline")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        result = dead_letter_replay(dead_letter_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"Replayed {result.replayed}; still failing {result.failed}.", messages.INFO)


@admin.register(Batch)
class PendingBatchAdmin(admin.ModelAdmin[Batch]):
    """Batches not yet in the rankings: waiting, or failed and waiting for an operator.

    Applied batches are left out: the ledger holds millions of them, and they need nothing.
    """

    list_display = ["id", "source", "received_at", "processed_at", "failures", "failed_at", "error"]
    list_filter = ["source", ("failed_at", admin.EmptyFieldListFilter)]
    fields = ("id", "source", "received_at", "processed_at", "applied_at", "counted", "failures", "failed_at", "error")
    readonly_fields = fields
    ordering = ["received_at"]
    show_full_result_count = False
    actions = ["retry"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Batch]:
        # Two conditions, one per partial index of the ledger (unprocessed; processed but unapplied).
        pending = Q(processed_at__isnull=True) | Q(processed_at__isnull=False, applied_at__isnull=True)
        return super().get_queryset(request).filter(pending).defer("payload", "deltas")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Batch | None = None) -> bool:
        return False

    @admin.action(description="Retry selected failed batches", permissions=["view"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        queued = batches_retry(batch_ids=[str(b) for b in queryset.values_list("id", flat=True)])
        for batch_id in queued:
            tasks.batch_process.delay(batch_id)
        self.message_user(
            request,
            f"Queued {len(queued)} failed batch(es) again; failed batches already counted are applied by the sweeper.",
            messages.INFO,
        )
