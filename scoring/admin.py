"""Admin of what scoring owns (dead letters) and of the rebuild that applies a weight change."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from events.admin import EventTypeAdmin
from events.models import EventType
from scoring import tasks
from scoring.ledger import dead_letter_replay
from scoring.models import DeadLetter


def _queue_rebuild(request: HttpRequest, admin_: admin.ModelAdmin[Any]) -> None:
    tasks.rankings_rebuild.delay()
    admin_.message_user(request, "Rankings rebuild queued; lists are swapped in when it completes.", messages.SUCCESS)


# Weights are the events app's; re-scoring history with them is scoring's, so scoring extends that admin.
admin.site.unregister(EventType)


@admin.register(EventType)
class EventTypeScoringAdmin(EventTypeAdmin):
    actions = ["rebuild_rankings"]

    def save_model(self, request: HttpRequest, obj: EventType, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "weight" in form.changed_data:
            self.message_user(
                request,
                f"Weight of '{obj.name}' changed. New events use it now; run the 'Rebuild rankings' action "
                "(select any event type) to re-score past events with it.",
                messages.WARNING,
            )

    @admin.action(description="Rebuild rankings from the hourly counters")
    def rebuild_rankings(self, request: HttpRequest, queryset: QuerySet[EventType]) -> None:
        _queue_rebuild(request, self)


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin[DeadLetter]):
    list_display = ["created_at", "reason", "topic", "partition", "offset", "replayed_at"]
    list_filter = ["reason", "replayed_at"]
    search_fields = ["raw", "reason"]
    readonly_fields = ["created_at", "reason", "raw", "topic", "partition", "offset", "replayed_at"]
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay selected dead letters through the pipeline")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        result = dead_letter_replay(dead_letter_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"Replayed {result.replayed}; still failing {result.failed}.", messages.INFO)
