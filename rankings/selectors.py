"""Reads behind the rankings API: the projection's read primitives (leaderboard.reads), with
the catalogue answering for what the cache does not hold yet and the counters explaining scores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from leaderboard import reads
from leaderboard.reads import RankingEntry, RankingPage, Standing
from scoring.selectors import rising_inputs, score_breakdown
from videos import selectors as catalogue

__all__ = [
    "AroundPage",
    "Movers",
    "RankingEntry",
    "RankingPage",
    "Standing",
    "UnknownCategory",
    "UnknownVideo",
    "category_id_for",
    "ranking_around",
    "ranking_movers",
    "ranking_standings",
    "ranking_top",
    "rising_inputs",
    "score_breakdown",
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


def _published_meta(video_id: int) -> tuple[int, dict[str, Any]]:
    cached = reads.video_meta_cached(video_id=video_id)
    if cached is None:
        # Not cached yet (saved a moment ago, or Redis rebuilt): read the same fields from Postgres,
        # so the answer has the full video shape rather than only its id.
        row = next(iter(catalogue.video_rows(video_ids=[video_id])), None)
        if row is None or row[1] != "published":
            raise UnknownVideo(video_id)
        _vid, _status, db_cid, title, slug, _cat_name, owner, thumb, duration, published_at = row
        return int(db_cid), {
            "id": video_id,
            "title": title,
            "category": slug,
            "owner": owner,
            "thumbnail_url": thumb or "",
            "duration_seconds": int(duration),
            "published_at": published_at.isoformat() if published_at else None,
        }
    status, cid, video = cached
    if status != "published" or cid is None:
        raise UnknownVideo(video_id)
    return cid, video


def ranking_standings(*, video_id: int) -> tuple[dict[str, Any], list[Standing]]:
    """A published video's rank, score and percentile in every window, globally and in its category."""
    cid, video = _published_meta(video_id)
    return video, reads.ranking_standings(video_id=video_id, category_id=cid)


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
    results = reads.ranking_around(video_id=video_id, window=window, radius=radius, category_id=cid)
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
