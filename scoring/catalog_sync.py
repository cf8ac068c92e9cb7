"""Catalogue changes into the projection: video metadata, status moves, categories."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from leaderboard import store
from videos.selectors import VideoRow, category_rows, video_rows


def video_meta(row: VideoRow) -> store.VideoMeta:
    vid, status, cat_id, title, slug, cat_name, owner, thumb, duration, published_at = row
    return store.VideoMeta(
        id=vid, status=status, category_id=cat_id, title=title, category=slug, category_name=cat_name,
        owner=owner, thumbnail_url=thumb or "", duration_seconds=duration,
        published_at=published_at.isoformat() if published_at else "",
    )  # fmt: skip


def video_cache_sync(*, video_ids: Iterable[int]) -> int:
    """Write videos' metadata to Redis and move their scores to match their status."""
    ids = list(video_ids)
    if not ids:
        return 0
    videos = [video_meta(row) for row in video_rows(video_ids=ids)]
    found = {v.id for v in videos}
    store.videos_sync(videos=videos, gone=[vid for vid in ids if vid not in found])
    return len(videos)


def category_cache_sync(*, category_ids: Collection[int] | None = None) -> None:
    store.categories_sync(categories=category_rows(category_ids=category_ids))
