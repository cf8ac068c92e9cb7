"""Rank history: each ranking's top positions, taken periodically (previous ranks, movers, lists as
they stood, a video's rank over time)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from leaderboard import reads, store
from leaderboard.windows import WINDOWS
from rankings.models import RankingSnapshot, RankingSnapshotEntry


def snapshot_take(*, now: datetime | None = None) -> int:
    """Record each ranking's top positions (Postgres) and cache them for reads (Redis).

    Each snapshot is stored twice in one transaction: as one row with its entries as JSON
    (a list as it stood, movers, previous ranks) and as one row per entry (a video's history).
    """
    taken_at = now or timezone.now()
    slugs = dict(reads.ranking_scopes())
    snapshots = []
    rows = []
    cached = []
    for window, cid, ranked in reads.ranked_tops(depth=settings.RANKING_SNAPSHOT_DEPTH):
        slug = slugs.get(cid) or ""
        snapshots.append(RankingSnapshot(window=window, category_slug=slug, taken_at=taken_at, entries=ranked))
        rows += [
            RankingSnapshotEntry(
                video_id=vid, window=window, category_slug=slug, taken_at=taken_at, rank=rank, score=score
            )
            for vid, rank, score in ranked
        ]
        cached.append((window, cid, ranked, taken_at.isoformat()))
    cutoff = taken_at - settings.RANKING_SNAPSHOT_RETENTION
    with transaction.atomic():
        RankingSnapshot.objects.bulk_create(snapshots)
        RankingSnapshotEntry.objects.bulk_create(rows, batch_size=5000)
        RankingSnapshot.objects.filter(taken_at__lt=cutoff).delete()
        RankingSnapshotEntry.objects.filter(taken_at__lt=cutoff).delete()
    store.snapshots_cache_write(snapshots=cached)
    return len(snapshots)


def snapshot_cache_restore() -> None:
    """After a rebuild, put the latest snapshot of each ranking back into Redis."""
    cached = []
    for cid, slug in reads.ranking_scopes():
        for window in WINDOWS:
            snap = RankingSnapshot.objects.filter(window=window, category_slug=slug or "").order_by("-taken_at").first()
            if snap is not None:
                cached.append((window, cid, snap.entries, snap.taken_at.isoformat()))
    store.snapshots_cache_write(snapshots=cached)
