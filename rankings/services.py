"""Rank history: each ranking's top positions, taken periodically (previous ranks, movers)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.bulk import tables_truncate
from leaderboard import reads, store
from leaderboard.windows import WINDOWS
from rankings.models import RankingSnapshot


def snapshot_take(*, now: datetime | None = None) -> int:
    """Record each ranking's top positions (Postgres) and cache them for reads (Redis)."""
    taken_at = now or timezone.now()
    slugs = dict(reads.ranking_scopes())
    snapshots = []
    cached = []
    for window, cid, rows in reads.top_rows(depth=settings.RANKING_SNAPSHOT_DEPTH):
        ranked = reads.competition_ranks(rows)
        snapshots.append(
            RankingSnapshot(window=window, category_slug=slugs.get(cid) or "", taken_at=taken_at, entries=ranked)
        )
        cached.append((window, cid, ranked, taken_at.isoformat()))
    with transaction.atomic():
        RankingSnapshot.objects.bulk_create(snapshots)
        RankingSnapshot.objects.filter(taken_at__lt=taken_at - settings.RANKING_SNAPSHOT_RETENTION).delete()
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


def snapshots_reset() -> None:
    """Forget the rank history (Postgres); the cached latest snapshots in Redis go with the projection."""
    tables_truncate(tables=[RankingSnapshot._meta.db_table])
