"""Writes on videos. Receivers of videos.signals carry every change on after commit."""

from __future__ import annotations

from django.db import transaction

from videos.models import Video
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
