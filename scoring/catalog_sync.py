"""Catalogue changes into the projection's metadata: videos and categories."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable

from django.conf import settings
from django.utils import timezone

from leaderboard import store
from leaderboard.keys import scope_for
from leaderboard.windows import epoch, hour_floor
from videos.selectors import VideoRow, category_rows, video_rows


def video_meta(row: VideoRow) -> store.VideoMeta:
    vid, status, cat_id, title, slug, cat_name, owner, thumb, duration, published_at = row
    return store.VideoMeta(
        id=vid, status=status, category_id=cat_id, title=title, category=slug, category_name=cat_name,
        owner=owner, thumbnail_url=thumb or "", duration_seconds=duration,
        published_at=published_at.isoformat() if published_at else "",
    )  # fmt: skip


def video_cache_sync(*, video_ids: Iterable[int]) -> int:
    """Write videos' metadata where the read paths look for it (scores move as ledger batches)."""
    ids = list(video_ids)
    if not ids:
        return 0
    videos = [video_meta(row) for row in video_rows(video_ids=ids)]
    found = {v.id for v in videos}
    category_ids = [row[0] for row in category_rows()]
    store.videos_sync(videos=videos, gone=[vid for vid in ids if vid not in found], category_ids=category_ids)
    return len(videos)


def category_scope_open(*, category_id: int) -> None:
    """A category just created has an empty ranking scope: built, so batches for it apply at once.

    Only on creation: a scope lost with its shard must wait for its rebuild, not reopen empty.
    """
    store.scope_init(
        scope=scope_for(category_id),
        generation=time.time_ns() // 1_000_000,
        t0=epoch(hour_floor(timezone.now())),
        half_life_s=settings.RANKING_TRENDING_HALF_LIFE_S,
    )


def category_cache_sync(*, category_ids: Collection[int] | None = None) -> None:
    store.categories_sync(categories=category_rows(category_ids=category_ids))
