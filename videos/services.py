"""Writes on the catalogue: videos, categories and, for bulk loads, their owners.
Receivers of videos.signals carry every status change on after commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Index

from core.bulk import copy_field, copy_line, copy_text, ids_reserve, table_copy, tables_analyze, tables_truncate
from videos.models import Category, Video
from videos.signals import videos_status_changed


def video_bulk_set_status(*, video_ids: list[int], status: str) -> int:
    """Set the status of many videos; rankings follow within a second of commit."""
    if status not in Video.Status.values:
        raise ValueError(f"unknown status {status!r}")
    with transaction.atomic():
        before = list(
            Video.objects.select_for_update()
            .filter(id__in=video_ids)
            .exclude(status=status)
            .values_list("id", "status", "category_id")
        )
        changed = Video.objects.filter(id__in=[vid for vid, _, _ in before]).update(status=status)
        videos_status_changed.send(
            sender=Video, changes=[(vid, old, status, cid) for vid, old, cid in before], video_ids=list(video_ids)
        )
    return changed


def video_set_status(*, video_id: int, status: str) -> int:
    return video_bulk_set_status(video_ids=[video_id], status=status)


def category_ensure(*, slug: str, name: str, description: str = "") -> int:
    """The id of the category with ``slug``, created with ``name`` and ``description`` if missing."""
    category, _created = Category.objects.get_or_create(slug=slug, defaults={"name": name, "description": description})
    return category.id


# --- bulk loads (demo data): COPY with ids taken ahead, millions of rows in seconds -----------
#
# Rows are written as given: no signals, no cache sync. The caller rebuilds the rankings
# afterwards (scoring.rebuild), as after any load that bypasses the ORM.


# Plain tuples, not named ones: a million rows are built per load, and a NamedTuple's
# constructor costs a Python call each.
# A video owner (Django's auth user), which gets no usable password:
# (id, username, first name, last name, email, date joined).
OwnerLoad = tuple[int, str, str, str, str, datetime]
# A video, in the order of VIDEO_LOAD_COLUMNS.
VideoLoad = tuple[int, str, str, int, int, int, str, datetime | None, str, datetime, datetime]
VIDEO_LOAD_COLUMNS = ("id", "title", "description", "category_id", "owner_id", "duration_seconds", "thumbnail_url",
                      "published_at", "status", "created_at", "updated_at")  # fmt: skip


# "!" starts a password Django never accepts (as set_unusable_password does), fixed so loads repeat exactly.
_UNUSABLE_PASSWORD = "!bulk-loaded"
_OWNER_COLUMNS = ("id", "password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
                  "is_active", "date_joined")  # fmt: skip


def _owner_line(owner: OwnerLoad) -> str:
    oid, username, first_name, last_name, email, joined = owner
    return copy_line((oid, _UNUSABLE_PASSWORD, False, username, first_name, last_name, email, False, True, joined))


def _video_line(video: VideoLoad) -> str:
    # Typed columns formatted directly: a million of these per load.
    vid, title, description, category_id, owner_id, duration, thumbnail, published, status, created, updated = video
    return (
        f"{vid}\t{copy_text(title)}\t{copy_text(description)}\t{category_id}\t{owner_id}\t{duration}\t"
        f"{copy_text(thumbnail)}\t{copy_field(published)}\t{copy_text(status)}\t{created.isoformat()}\t"
        f"{updated.isoformat()}\n"
    )


def owner_ids_reserve(*, count: int) -> list[int]:
    """``count`` new user ids, ascending, for ``owners_bulk_load``."""
    return ids_reserve(table=get_user_model()._meta.db_table, count=count)


def owners_bulk_load(*, owners: Iterable[OwnerLoad], loaded: Callable[[int], None] | None = None) -> int:
    """COPY active, non-staff users with ids from ``owner_ids_reserve``; ``loaded`` hears the count so far."""
    return table_copy(
        table=get_user_model()._meta.db_table, columns=_OWNER_COLUMNS, lines=map(_owner_line, owners), loaded=loaded
    )


def owners_delete(*, email_domain: str) -> int:
    """Delete the users whose email is at ``email_domain``, staff and superusers excepted.

    Their videos must be gone first (an owner is protected by its videos)."""
    users = get_user_model().objects.filter(email__endswith=f"@{email_domain}", is_staff=False, is_superuser=False)
    # One DELETE, not the ORM's collector, which loads every user and deletes in batches
    # (100,000 users: 3x slower). The database still checks every foreign key to them.
    return users._raw_delete(users.db)


def video_ids_reserve(*, count: int) -> list[int]:
    """``count`` new video ids, ascending, for ``videos_bulk_load``."""
    return ids_reserve(table=Video._meta.db_table, count=count)


def videos_bulk_load(*, videos: Iterable[VideoLoad], loaded: Callable[[int], None] | None = None) -> int:
    """COPY videos with ids from ``video_ids_reserve``; ``loaded`` hears the count so far."""
    return table_copy(
        table=Video._meta.db_table, columns=VIDEO_LOAD_COLUMNS, lines=map(_video_line, videos), loaded=loaded
    )


# The admin's search indexes (title trigrams, publication date): maintained row by row they
# make a COPY of a million videos ~35% slower, built once after it they cost a few seconds.
SEARCH_INDEXES = ("video_title_upper_trgm", "video_published_at")


def _search_indexes() -> list[Index]:
    return [index for index in Video._meta.indexes if index.name in SEARCH_INDEXES]


def video_search_indexes_drop() -> None:
    """Drop the admin's search indexes before a bulk load; ``video_search_indexes_create`` puts them back.

    Takes the table's exclusive lock until the transaction ends."""
    with connection.schema_editor() as editor:
        for index in _search_indexes():
            editor.execute(f"DROP INDEX IF EXISTS {editor.quote_name(index.name)}")


def video_search_indexes_create() -> list[str]:
    """Create whichever of the admin's search indexes is missing; returns their names.

    Readers go on meanwhile; writes to videos wait for the build (a few seconds a million)."""
    with connection.cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [Video._meta.db_table])
        present = {r[0] for r in cur.fetchall()}
    missing = [index for index in _search_indexes() if index.name not in present]
    with connection.schema_editor() as editor:
        for index in missing:
            editor.add_index(Video, index)
    return [index.name for index in missing]


def videos_reset() -> None:
    """Delete every video and restart their ids; categories and users stay.

    Rows of other apps that reference videos go with them, as their ``on_delete=CASCADE``
    says (scoring's hourly counters): TRUNCATE cannot leave them pointing nowhere."""
    tables_truncate(tables=[Video._meta.db_table], cascade=True)


def catalogue_analyze() -> None:
    """Fresh planner statistics for videos and their owners after a bulk load."""
    tables_analyze(tables=[Video._meta.db_table, get_user_model()._meta.db_table])
