from __future__ import annotations

from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from events.models import ApiKey, EventType

admin.site.unregister(APIKey)  # the library's own model; ingestion uses ApiKey below


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin[EventType]):
    list_display = ["name", "weight", "dedupe_window_seconds", "description"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "last_used_at")  # type: ignore[assignment]
