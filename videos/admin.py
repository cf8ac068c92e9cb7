from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import IndexedDateHierarchyMixin
from videos import services
from videos.models import Category, Video


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = ["name", "slug", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}


def _set_status(request: HttpRequest, queryset: QuerySet[Video], status: str, admin_: admin.ModelAdmin[Video]) -> None:
    changed = services.video_bulk_set_status(video_ids=list(queryset.values_list("id", flat=True)), status=status)
    admin_.message_user(request, f"{changed} video(s) set to {status}.", messages.SUCCESS)


@admin.register(Video)
class VideoAdmin(IndexedDateHierarchyMixin, admin.ModelAdmin[Video]):
    list_display = ["id", "title", "category", "owner", "status", "duration_seconds", "published_at"]
    list_filter = ["status", "category"]
    # An icontains on title; the trigram index of the model answers it at a million videos.
    search_fields = ["title"]
    list_select_related = ["category", "owner"]
    # Owners are found by name (the User admin's search_fields), not typed in as raw ids.
    autocomplete_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]
    # Indexed (video_published_at); the mixin lists its years, months and days by index probes.
    date_hierarchy = "published_at"
    actions = ["hide_videos", "publish_videos", "remove_videos"]
    show_full_result_count = False

    @admin.action(description="Hide selected videos (leave every ranking)")
    def hide_videos(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        _set_status(request, queryset, Video.Status.HIDDEN, self)

    @admin.action(description="Publish selected videos (scores restored)")
    def publish_videos(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        _set_status(request, queryset, Video.Status.PUBLISHED, self)

    @admin.action(description="Remove selected videos")
    def remove_videos(self, request: HttpRequest, queryset: QuerySet[Video]) -> None:
        _set_status(request, queryset, Video.Status.REMOVED, self)
