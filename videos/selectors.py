"""Reads of the catalogue (Postgres). Querysets join what the serializers print,
so a page costs one query plus the count, whatever its size."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet

from core.bulk import array_param
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


def videos_published(*, video_ids: Collection[int]) -> QuerySet[Video]:
    """The published videos among ``video_ids``, as a queryset other apps may filter by (one query)."""
    return Video.objects.filter(id__in=video_ids, status=Video.Status.PUBLISHED)


def video_ids_published(*, video_ids: Collection[int]) -> set[int]:
    """The subset of ``video_ids`` that exist and are published."""
    return set(Video.objects.filter(id__in=video_ids, status=Video.Status.PUBLISHED).values_list("id", flat=True))


# --- for the projection (scoring reads these; the catalogue knows nothing of it) ---------

# One row per video, in this order: id, status, category id, title, category slug, category
# name, owner's username, thumbnail URL, duration in seconds, published at (or None).
VideoRow = tuple[int, str, int, str, str, str, str, str, int, datetime | None]


def video_rows(*, video_ids: Iterable[int] | None) -> Iterator[VideoRow]:
    """Everything the metadata cache holds per video (None: every video, by id), streamed."""
    qs = Video.objects.order_by("id").values_list(
        "id", "status", "category_id", "title", "category__slug", "category__name", "owner__username",
        "thumbnail_url", "duration_seconds", "published_at",
    )  # fmt: skip
    if video_ids is not None:
        qs = qs.filter(id__in=list(video_ids))
    yield from qs.iterator(chunk_size=20_000)


def video_count() -> int:
    return Video.objects.count()


@dataclass(frozen=True, slots=True)
class VideoFacts:
    """What counting an event needs to know about its video."""

    duration_seconds: int
    status: str
    category_id: int

    @property
    def published(self) -> bool:
        return self.status == Video.Status.PUBLISHED


def video_facts(*, video_ids: Collection[int]) -> dict[int, VideoFacts]:
    """Duration, status and category of each existing video among ``video_ids``."""
    # Every batch asks for thousands of ids: one array literal, not a parameter per id (``id__in``),
    # joined rather than matched with ``= ANY``: the join reads the covering index ``video_facts``
    # alone, ``= ANY`` went through the primary key to the table's pages (half the time, at a
    # million videos).
    with connection.cursor() as cur:
        cur.execute(
            "SELECT v.id, v.duration_seconds, v.status, v.category_id "
            f"FROM unnest(%s::bigint[]) AS wanted(id) JOIN {Video._meta.db_table} v ON v.id = wanted.id",
            [array_param(sorted(set(video_ids)))],
        )
        return {vid: VideoFacts(duration, status, cid) for vid, duration, status, cid in cur.fetchall()}


def video_states(*, video_ids: Collection[int] | None = None) -> dict[int, tuple[str, int]]:
    """id -> (status, category id), of the given videos or of all."""
    qs = Video.objects.all() if video_ids is None else Video.objects.filter(id__in=video_ids)
    return {vid: (status, cid) for vid, status, cid in qs.values_list("id", "status", "category_id").iterator(20_000)}


def video_ids_changed_since(*, moment: datetime) -> list[int]:
    return list(Video.objects.filter(updated_at__gte=moment).values_list("id", flat=True))


def category_rows(*, category_ids: Collection[int] | None = None) -> list[tuple[int, str, str, bool]]:
    """(id, slug, name, active) of the given categories or of all, by id."""
    qs = Category.objects.order_by("id")
    if category_ids is not None:
        qs = qs.filter(id__in=category_ids)
    return list(qs.values_list("id", "slug", "name", "is_active"))


def category_id_for_slug(*, slug: str) -> int | None:
    return Category.objects.filter(slug=slug).values_list("id", flat=True).first()


def video_summaries(*, published_only: bool = False) -> list[tuple[int, int, str]]:
    """(id, duration in seconds, status) of every video (or every published one), by id."""
    qs = Video.objects.order_by("id")
    if published_only:
        qs = qs.filter(status=Video.Status.PUBLISHED)
    return list(qs.values_list("id", "duration_seconds", "status").iterator(chunk_size=20_000))


# --- owners (Django's auth users) --------------------------------------------------------


def owner_count(*, email_domain: str) -> int:
    """How many users have an email at ``email_domain``."""
    return get_user_model().objects.filter(email__endswith=f"@{email_domain}").count()


def owner_ids(*, email_domain: str) -> list[int]:
    """Ids of the users whose email is at ``email_domain``, ascending."""
    users = get_user_model().objects.filter(email__endswith=f"@{email_domain}").order_by("id")
    return list(users.values_list("id", flat=True))
