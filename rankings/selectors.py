"""Reads behind the rankings API: the projection's read primitives (leaderboard.reads), with
the catalogue answering for what the cache does not hold yet and the counters explaining scores;
the rank snapshots (Postgres) for lists as they stood and a video's rank over time; webhook
subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from leaderboard import reads
from leaderboard.reads import RankingEntry, RankingPage, Standing
from leaderboard.windows import WINDOWS
from rankings.models import RankingSnapshot, RankingSnapshotEntry, WebhookSubscription
from scoring.selectors import rising_inputs, score_breakdown
from videos import selectors as catalogue

__all__ = [
    "AroundPage",
    "HistoryPoint",
    "Movers",
    "RankHistory",
    "RankingAsOf",
    "RankingEntry",
    "RankingPage",
    "SnapshotNotKept",
    "Standing",
    "UnknownCategory",
    "UnknownVideo",
    "category_id_for",
    "ranking_around",
    "ranking_as_of",
    "ranking_movers",
    "ranking_standings",
    "ranking_top",
    "rising_inputs",
    "score_breakdown",
    "video_rank_history",
    "webhook_subscription_list",
]


class UnknownCategory(Exception):
    pass


class UnknownVideo(Exception):
    pass


def category_id_for(slug: str | None) -> int | None:
    """None for the global scope; raises UnknownCategory for a slug no category has."""
    if slug is None:
        return None
    cid = reads.category_id_cached(slug=slug)
    if cid is None:
        cid = catalogue.category_id_for_slug(slug=slug)
        if cid is None:
            raise UnknownCategory(slug)
    return cid


def ranking_top(*, window: str, category_slug: str | None = None, limit: int = 20, offset: int = 0) -> RankingPage:
    return reads.ranking_top(
        window=window, category_id=category_id_for(category_slug), category_slug=category_slug, limit=limit,
        offset=offset,
    )  # fmt: skip


def _video_of_row(row: catalogue.VideoRow) -> dict[str, Any]:
    """The public fields of a video from its catalogue row, as the metadata cache holds them."""
    vid, _status, _cid, title, slug, _cat_name, owner, thumb, duration, published_at = row
    return {
        "id": int(vid),
        "title": title,
        "category": slug,
        "owner": owner,
        "thumbnail_url": thumb or "",
        "duration_seconds": int(duration),
        "published_at": published_at.isoformat() if published_at else None,
    }


def _published_meta(video_id: int) -> tuple[int, dict[str, Any]]:
    cached = reads.video_meta_cached(video_id=video_id)
    if cached is None:
        return _published_row(video_id)
    status, cid, video = cached
    if status != "published" or cid is None:
        raise UnknownVideo(video_id)
    return cid, video


def _published_row(video_id: int) -> tuple[int, dict[str, Any]]:
    # Not cached yet (saved a moment ago, or Redis rebuilt): read the same fields from Postgres,
    # so the answer has the full video shape rather than only its id.
    row = next(iter(catalogue.video_rows(video_ids=[video_id])), None)
    if row is None or row[1] != "published":
        raise UnknownVideo(video_id)
    return int(row[2]), _video_of_row(row)


def ranking_standings(*, video_id: int, window: str | None = None) -> tuple[dict[str, Any], list[Standing]]:
    """A published video's rank, score and percentile in every window (or in ``window`` alone, which
    reads only that window's lists), globally and in its category."""
    windows = WINDOWS if window is None else (window,)
    found = reads.video_standings(video_id=video_id, windows=windows)
    if found is None:
        cid, video = _published_row(video_id)
        return video, reads.ranking_standings(video_id=video_id, category_id=cid, windows=windows)
    if found.status != "published" or found.category_id is None:
        raise UnknownVideo(video_id)
    return found.video, found.standings


@dataclass
class AroundPage:
    window: str
    category: str | None
    video_id: int
    results: list[RankingEntry]


def ranking_around(*, video_id: int, window: str, radius: int, category_slug: str | None = None) -> AroundPage:
    """The video and up to ``radius`` neighbours above and below it in one ranking."""
    cid_of_video, _ = _published_meta(video_id)
    cid = category_id_for(category_slug)
    if cid is not None and cid != cid_of_video:
        raise UnknownVideo(video_id)
    results = reads.ranking_around(
        video_id=video_id, window=window, radius=radius, category_id=cid, video_category_id=cid_of_video
    )
    return AroundPage(window=window, category=category_slug, video_id=video_id, results=results)


@dataclass
class Movers:
    window: str
    category: str | None
    since: datetime | None
    climbers: list[dict[str, Any]]
    new_entries: list[dict[str, Any]]


def ranking_movers(*, window: str, category_slug: str | None = None, limit: int = 20) -> Movers:
    """Biggest climbers and new entries in the top positions since the last snapshot."""
    cid = category_id_for(category_slug)
    entries, since = reads.ranking_top_since_snapshot(
        window=window, category_id=cid, depth=settings.RANKING_SNAPSHOT_DEPTH
    )
    climbers: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for e in entries:
        item: dict[str, Any] = {"rank": e.rank, "previous_rank": e.previous_rank, "score": e.score, "video": e.video}
        if e.previous_rank is None:
            new.append(item)
        elif e.previous_rank > e.rank:
            climbers.append({**item, "change": e.previous_rank - e.rank})
    climbers.sort(key=lambda c: (-c["change"], c["rank"]))
    return Movers(
        window=window, category=category_slug, since=since, climbers=climbers[:limit], new_entries=new[:limit]
    )


# --- history: lists as they stood, a video's rank over time (Postgres snapshots) --------------


class SnapshotNotKept(Exception):
    """No snapshot of the list at that time: before the oldest kept one, or in the future."""

    def __init__(self, *, as_of: datetime, oldest: datetime | None) -> None:
        super().__init__(as_of.isoformat())
        self.as_of = as_of
        self.oldest = oldest


@dataclass
class RankingAsOf:
    page: RankingPage
    taken_at: datetime


def _videos_published(video_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The public fields of those of ``video_ids`` that are published now: the cache, then the catalogue."""
    cached = reads.videos_meta_cached(video_ids=video_ids)
    found = {vid: video for vid, (status, video) in cached.items() if status == "published"}
    missing = [vid for vid in video_ids if vid not in cached]
    if missing:
        found |= {
            int(row[0]): _video_of_row(row) for row in catalogue.video_rows(video_ids=missing) if row[1] == "published"
        }
    return found


def ranking_as_of(
    *, window: str, as_of: datetime, category_slug: str | None = None, limit: int = 20, offset: int = 0
) -> RankingAsOf:
    """A page of the list as it stood at ``as_of``: the latest snapshot taken at or before it.

    Entries keep the rank they had; videos that are not published now (hidden or removed
    since) are left out, like from every other list. ``previous_rank`` is the rank in the
    snapshot before that one. Raises SnapshotNotKept, UnknownCategory.
    """
    category_id_for(category_slug)
    lists = RankingSnapshot.objects.filter(window=window, category_slug=category_slug or "")
    now = timezone.now()
    pair = [] if as_of > now else list(lists.filter(taken_at__lte=as_of).order_by("-taken_at")[:2])
    if not pair:
        oldest = lists.order_by("taken_at").values_list("taken_at", flat=True).first()
        raise SnapshotNotKept(as_of=as_of, oldest=oldest)
    snapshot = pair[0]
    previous = {int(vid): int(rank) for vid, rank, _ in pair[1].entries} if len(pair) > 1 else {}
    videos = _videos_published([int(vid) for vid, _, _ in snapshot.entries])
    shown = [(int(vid), int(rank), float(score)) for vid, rank, score in snapshot.entries if int(vid) in videos]
    page = RankingPage(
        window=window, category=category_slug, generated_at=now, total=len(shown), limit=limit, offset=offset
    )
    page.results = [
        RankingEntry(rank=rank, score=score, previous_rank=previous.get(vid), video=videos[vid])
        for vid, rank, score in shown[offset : offset + limit]
    ]
    return RankingAsOf(page=page, taken_at=snapshot.taken_at)


# A week at the default interval is 2,016 points; a much shorter interval is capped to the newest.
HISTORY_MAX_POINTS = 5000


@dataclass
class HistoryPoint:
    taken_at: datetime
    rank: int | None
    score: float | None


@dataclass
class RankHistory:
    video_id: int
    window: str
    category: str | None
    since: datetime
    points: list[HistoryPoint]


def video_rank_history(
    *, video_id: int, window: str, category_slug: str | None = None, since: datetime | None = None
) -> RankHistory:
    """A published video's rank and score at every snapshot of one list since ``since``, oldest first.

    One point per snapshot of the list; rank and score are None where the video was not in
    the snapshot's top positions. The list is the global one, or the video's own category's.
    Two index range scans: the list's snapshot times and the video's entries in that list.
    Raises UnknownVideo (also for a category that is not the video's), UnknownCategory.
    """
    cid_of_video, _ = _published_meta(video_id)
    cid = category_id_for(category_slug)
    if cid is not None and cid != cid_of_video:
        raise UnknownVideo(video_id)
    if since is None:
        since = timezone.now() - settings.RANKING_SNAPSHOT_RETENTION
    slug = category_slug or ""
    times = list(
        RankingSnapshot.objects.filter(window=window, category_slug=slug, taken_at__gte=since)
        .order_by("-taken_at")
        .values_list("taken_at", flat=True)[:HISTORY_MAX_POINTS]
    )
    times.reverse()
    kept: dict[datetime, tuple[int, float]] = {}
    if times:
        entries = RankingSnapshotEntry.objects.filter(
            video_id=video_id, window=window, category_slug=slug, taken_at__gte=times[0]
        ).values_list("taken_at", "rank", "score")
        kept = {taken_at: (rank, score) for taken_at, rank, score in entries}
    points = [HistoryPoint(t, *kept.get(t, (None, None))) for t in times]
    return RankHistory(video_id=video_id, window=window, category=category_slug, since=since, points=points)


# --- webhooks ---------------------------------------------------------------------------------


def webhook_subscription_list(*, api_key_id: str) -> QuerySet[WebhookSubscription]:
    """The subscriptions of one API key, oldest first."""
    return WebhookSubscription.objects.filter(api_key_id=api_key_id).order_by("id")
