"""Keep the Redis metadata cache in step with every saved video (admin, shell, seed).

Bulk paths (seed, bulk status change) call rankings.services.video_cache_sync
themselves; this hook covers single saves.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from videos.models import Category, Video


@receiver(post_save, sender=Video)
def video_saved(sender: type[Video], instance: Video, **kwargs: Any) -> None:
    from rankings.services import video_cache_sync

    video_id = instance.pk
    transaction.on_commit(lambda: video_cache_sync(video_ids=[video_id]))


@receiver(post_save, sender=Category)
def category_saved(sender: type[Category], instance: Category, **kwargs: Any) -> None:
    from rankings.services import category_cache_sync

    category_id = instance.pk
    transaction.on_commit(lambda: category_cache_sync(category_ids=[category_id]))
