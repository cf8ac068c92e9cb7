"""Scoring listens to the catalogue (the catalogue knows nothing of scoring).

Single saves (admin, shell) and bulk status changes reach the Redis metadata
cache after commit; the rankings follow within a second.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from scoring import signals, tasks
from scoring.catalog_sync import category_cache_sync, video_cache_sync
from videos.models import Category, Video
from videos.signals import videos_status_changed


@receiver(post_save, sender=Video)
def video_saved(sender: type[Video], instance: Video, **kwargs: Any) -> None:
    video_id = instance.pk
    transaction.on_commit(lambda: video_cache_sync(video_ids=[video_id]))


@receiver(videos_status_changed)
def videos_status_moved(sender: Any, video_ids: list[int], **kwargs: Any) -> None:
    transaction.on_commit(lambda: video_cache_sync(video_ids=video_ids))


@receiver(post_save, sender=Category)
def category_saved(sender: type[Category], instance: Category, **kwargs: Any) -> None:
    category_id = instance.pk
    transaction.on_commit(lambda: category_cache_sync(category_ids=[category_id]))


@receiver(signals.rebuild_needed)
def rebuild_queue(sender: Any, **kwargs: Any) -> None:
    tasks.rankings_rebuild.delay()
