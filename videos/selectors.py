"""Reads of the catalogue (Postgres). Querysets join what the serializers print,
so a page costs one query plus the count, whatever its size."""

from __future__ import annotations

from django.db.models import QuerySet

from events.models import EventType
from videos.models import Category, Video


def video_list(*, category_slug: str | None = None) -> QuerySet[Video]:
    """Published videos, oldest id first (a stable order keeps limit/offset pages disjoint)."""
    qs = Video.objects.select_related("category", "owner").filter(status=Video.Status.PUBLISHED).order_by("id")
    if category_slug is not None:
        qs = qs.filter(category__slug=category_slug)
    return qs


def video_get(*, video_id: int) -> Video | None:
    """A published video, or None: hidden and removed videos do not exist for the public API."""
    return video_list().filter(id=video_id).first()


def category_list() -> QuerySet[Category]:
    return Category.objects.filter(is_active=True).order_by("name", "id")


def category_exists(*, slug: str) -> bool:
    return Category.objects.filter(slug=slug).exists()


def event_type_list() -> QuerySet[EventType]:
    return EventType.objects.order_by("name")
