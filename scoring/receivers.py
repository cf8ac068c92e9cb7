"""Scoring listens to the catalogue (the catalogue knows nothing of scoring).

A video entering or leaving a scope (status or category change, deletion) is a
ledger batch recorded in the change's own transaction (scoring.moves); metadata
follows after commit. Bulk status changes arrive as videos.signals.videos_status_changed.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save, pre_delete, pre_save
from django.dispatch import receiver

from scoring import signals, tasks
from scoring.catalog_sync import category_cache_sync, category_scope_open, video_cache_sync
from scoring.moves import VideoState, video_moves_record
from videos.models import Category, Video
from videos.selectors import video_states
from videos.signals import videos_status_changed

_NEW = VideoState(None, None)


@receiver(pre_save, sender=Video)
def video_before_save(sender: type[Video], instance: Video, **kwargs: Any) -> None:
    before = video_states(video_ids=[instance.pk]).get(instance.pk) if instance.pk else None
    instance._scoring_before = VideoState(*before) if before else _NEW  # type: ignore[attr-defined]


@receiver(post_save, sender=Video)
def video_saved(sender: type[Video], instance: Video, **kwargs: Any) -> None:
    before = getattr(instance, "_scoring_before", _NEW)
    video_moves_record(changes=[(instance.pk, before, VideoState(instance.status, instance.category_id))])
    video_id = instance.pk
    transaction.on_commit(lambda: video_cache_sync(video_ids=[video_id]))


@receiver(pre_delete, sender=Video)
def video_deleting(sender: type[Video], instance: Video, **kwargs: Any) -> None:
    # Before the counters cascade away: the move needs them to take the video's scores out.
    before = video_states(video_ids=[instance.pk]).get(instance.pk)
    if before:
        video_moves_record(changes=[(instance.pk, VideoState(*before), _NEW)])
    video_id = instance.pk
    transaction.on_commit(lambda: video_cache_sync(video_ids=[video_id]))


@receiver(videos_status_changed)
def videos_status_moved(sender: Any, changes: list[tuple[int, str, str, int]], **kwargs: Any) -> None:
    video_moves_record(changes=[(vid, VideoState(old, cid), VideoState(new, cid)) for vid, old, new, cid in changes])
    video_ids = [vid for vid, *_ in changes]
    transaction.on_commit(lambda: video_cache_sync(video_ids=video_ids))


@receiver(post_save, sender=Category)
def category_saved(sender: type[Category], instance: Category, created: bool, **kwargs: Any) -> None:
    category_id = instance.pk

    def sync() -> None:
        category_cache_sync(category_ids=[category_id])
        if created:
            category_scope_open(category_id=category_id)

    transaction.on_commit(sync)


@receiver(signals.rebuild_needed)
def rebuild_queue(sender: Any, **kwargs: Any) -> None:
    # Only the scopes that are missing when the task runs: a master restarted empty loses its
    # scopes alone, and rebuilding every scope would throw away the others' live state for
    # nothing. The burst of batches that meet the same lost scope then costs one rebuild.
    tasks.rankings_watchdog.delay()
