"""Reads of the rankings. Every list read is O(log N + page) in Redis: a top-N page is one
Lua call (rankings.lua.TOP); the other lists take one pipelined round trip for the page and
one for its metadata and previous ranks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from rankings import redis_keys as rk
from rankings.lua import TOP, script
from rankings.windows import window_start

VIDEO_FIELDS = ("id", "title", "category", "owner", "thumbnail_url", "duration_seconds", "published_at", "status")


class UnknownCategory(Exception):
    pass


class UnknownVideo(Exception):
    pass


def competition_ranks(
    entries: Sequence[tuple[int, float]], *, first_position: int = 0, first_rank: int | None = None
) -> list[list[Any]]:
    """[(video_id, score)] best first -> [[video_id, rank, score]], ties ranked 1, 2, 2, 4.

    ``first_position`` is the 0-based place of the first entry in the whole
    ranking; ``first_rank`` its rank when the page starts inside a tie.
    """
    ranked: list[list[Any]] = []
    rank = first_rank if first_rank is not None else first_position + 1
    for i, (vid, score) in enumerate(entries):
        if i and score != entries[i - 1][1]:
            rank = first_position + i + 1
        ranked.append([vid, rank, score])
    return ranked


def ranking_scopes() -> list[tuple[int | None, str | None]]:
    """(category_id, slug) for the global scope and every category."""
    cats = rk.redis_client().hgetall(rk.CATS)
    return [(None, None), *sorted((int(cid), slug.decode()) for slug, cid in cats.items())]


def category_id_for(slug: str | None) -> int | None:
    if slug is None:
        return None
    cid = rk.redis_client().hget(rk.CATS, slug)
    if cid is None:
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM videos_category WHERE slug = %s", [slug])
            row = cur.fetchone()
        if row is None:
            raise UnknownCategory(slug)
        return int(row[0])
    return int(cid)


def _decay_factor(trend: Sequence[bytes | None], now: datetime) -> float:
    """Stored trending scores are relative to t0; divide by 2^((now - t0)/half-life) to read them."""
    if trend[0] is None or trend[1] is None:
        return 1.0
    t0, hl = float(trend[0]), float(trend[1])
    return float(2.0 ** ((t0 - now.timestamp()) / hl))


def _score(window: str, stored: float, factor: float) -> float:
    value = -stored * (factor if window == "trending" else 1.0)
    return round(value, 6) + 0.0  # +0.0 turns -0.0 into 0.0


def _video(fields: Sequence[bytes | None], video_id: int) -> dict[str, Any]:
    data = {name: (v.decode() if v is not None else None) for name, v in zip(VIDEO_FIELDS, fields, strict=True)}
    return {
        "id": video_id,
        "title": data["title"] or "",
        "category": data["category"] or "",
        "owner": data["owner"] or "",
        "thumbnail_url": data["thumbnail_url"] or "",
        "duration_seconds": int(data["duration_seconds"] or 0),
        "published_at": data["published_at"] or None,
    }


@dataclass
class RankingEntry:
    rank: int
    score: float
    previous_rank: int | None
    video: dict[str, Any]


@dataclass
class RankingPage:
    window: str
    category: str | None
    generated_at: datetime
    total: int
    limit: int
    offset: int
    results: list[RankingEntry] = field(default_factory=list)


def _entries(
    client: Any,
    key: str,
    window: str,
    rows: list[tuple[bytes, float]],
    first_position: int,
    snap_key: str,
    factor: float,
) -> list[RankingEntry]:
    if not rows:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.zcount(key, "-inf", f"({rows[0][1]!r}")
    ids = [rk.video_id_of(m) for m, _ in rows]
    for vid in ids:
        pipe.hmget(rk.video_key(vid), VIDEO_FIELDS)
    pipe.hmget(snap_key, [str(v) for v in ids])
    out = pipe.execute()
    scored = [(vid, s) for vid, (_, s) in zip(ids, rows, strict=True)]
    return _ranked_entries(window, scored, first_position, int(out[0]) + 1, out[1:-1], out[-1], factor)


def _ranked_entries(
    window: str,
    scored: list[tuple[int, float]],
    first_position: int,
    first_rank: int,
    metas: Sequence[Sequence[bytes | None]],
    previous: Sequence[bytes | None],
    factor: float,
) -> list[RankingEntry]:
    ranked = competition_ranks(scored, first_position=first_position, first_rank=first_rank)
    return [
        RankingEntry(
            rank=rank,
            score=_score(window, stored, factor),
            previous_rank=int(prev) if prev is not None else None,
            video=_video(meta, vid),
        )
        for (vid, rank, stored), meta, prev in zip(ranked, metas, previous, strict=True)
    ]


def ranking_top(*, window: str, category_slug: str | None = None, limit: int = 20, offset: int = 0) -> RankingPage:
    cid = category_id_for(category_slug)
    key = rk.ranking_key(window, cid)
    # One round trip (rankings.lua.TOP) for the count, the page, its ties, metadata and previous ranks.
    out = script(TOP)(
        keys=[key, rk.TREND, rk.snapshot_key(window, cid)],
        args=[offset, offset + limit - 1, *VIDEO_FIELDS],
        client=rk.redis_client(),
    )
    total, flat, trend = out[0], out[1], out[2]
    now = timezone.now()
    page = RankingPage(
        window=window, category=category_slug, generated_at=now, total=int(total), limit=limit, offset=offset
    )
    if flat:
        scored = [(rk.video_id_of(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]
        factor = _decay_factor(trend, now)
        page.results = _ranked_entries(window, scored, offset, int(out[3]) + 1, out[4], out[5], factor)
    return page


@dataclass
class Standing:
    window: str
    scope: str
    rank: int | None
    score: float | None
    percentile: float | None
    total: int


def video_rows(*, video_ids: Iterable[int] | None) -> Iterable[tuple[Any, ...]]:
    """Everything the metadata cache holds per video, from Postgres (None: every video)."""
    sql = """
        SELECT v.id, v.status, v.category_id, v.title, c.slug, c.name, u.username, v.thumbnail_url,
               v.duration_seconds, v.published_at
        FROM videos_video v
        JOIN videos_category c ON c.id = v.category_id
        JOIN auth_user u ON u.id = v.owner_id
    """
    params: list[Any] = []
    if video_ids is not None:
        sql += " WHERE v.id = ANY(%s)"
        params.append(list(video_ids))
    with connection.cursor() as cur:
        cur.execute(sql, params)
        yield from cur.fetchall()


def _published_meta(video_id: int) -> tuple[int, dict[str, Any]]:
    fields = rk.redis_client().hmget(rk.video_key(video_id), [*VIDEO_FIELDS, "category_id"])
    *meta, cid = fields
    status = meta[-1].decode() if meta[-1] is not None else None
    if status is None:
        # Not cached yet (saved a moment ago, or Redis rebuilt): read the same fields from Postgres,
        # so the answer has the full video shape rather than only its id.
        row = next(iter(video_rows(video_ids=[video_id])), None)
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
    if status != "published" or cid is None:
        raise UnknownVideo(video_id)
    return int(cid), _video(meta, video_id)


def ranking_standings(*, video_id: int) -> tuple[dict[str, Any], list[Standing]]:
    """A published video's rank, score and percentile in every window, globally and in its category."""
    cid, video = _published_meta(video_id)
    client = rk.redis_client()
    member = rk.member(video_id)
    scopes = [("global", None), ("category", cid)]
    keys = [(w, scope, rk.ranking_key(w, c)) for w in rk.WINDOWS for scope, c in scopes]
    pipe = client.pipeline(transaction=False)
    for _, _, key in keys:
        pipe.zscore(key, member)
    pipe.hmget(rk.TREND, "t0", "hl")
    *scores, trend = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for (_, _, key), stored in zip(keys, scores, strict=True):
        pipe.zcard(key)
        if stored is not None:
            pipe.zcount(key, "-inf", f"({stored!r}")
    out = iter(pipe.execute())
    factor = _decay_factor(trend, timezone.now())
    standings = []
    for (window, scope, _), stored in zip(keys, scores, strict=True):
        total = int(next(out))
        if stored is None:
            standings.append(Standing(window, scope, None, None, None, total))
            continue
        better = int(next(out))
        # Share of the *other* ranked videos that do not beat it: rank 1 is 100 whatever the size
        # of the ranking (an only video too), the last is 0, and tied videos share a value.
        percentile = 100.0 if total <= 1 else round(100.0 * (total - better - 1) / (total - 1), 2)
        standings.append(Standing(window, scope, better + 1, _score(window, stored, factor), percentile, total))
    return video, standings


def score_breakdown(*, video_id: int) -> dict[str, list[dict[str, Any]]]:
    """Per window, per event type: events, units, weight and the score they add (from Postgres)."""
    with connection.cursor() as cur:
        cur.execute("SELECT current_hour FROM rankings_windowstate WHERE id = 1")
        row = cur.fetchone()
        current_hour = row[0] if row else timezone.now().replace(minute=0, second=0, microsecond=0)
        hl = settings.RANKING_TRENDING_HALF_LIFE_S
        cur.execute(
            """
            SELECT e.name, e.weight,
                   COALESCE(SUM(c.events) FILTER (WHERE c.hour >= %(hour)s), 0),
                   COALESCE(SUM(c.units) FILTER (WHERE c.hour >= %(hour)s), 0),
                   COALESCE(SUM(c.events) FILTER (WHERE c.hour >= %(day)s), 0),
                   COALESCE(SUM(c.units) FILTER (WHERE c.hour >= %(day)s), 0),
                   COALESCE(SUM(c.events) FILTER (WHERE c.hour >= %(week)s), 0),
                   COALESCE(SUM(c.units) FILTER (WHERE c.hour >= %(week)s), 0),
                   COALESCE(SUM(c.events), 0), COALESCE(SUM(c.units), 0),
                   COALESCE(SUM(c.events), 0),
                   COALESCE(SUM(c.units * power(2::float8, (extract(epoch FROM c.hour) - %(now)s) / %(hl)s)), 0)
            FROM events_eventtype e
            LEFT JOIN events_hourlycounter c ON c.event_type_id = e.id AND c.video_id = %(video)s
            GROUP BY e.name, e.weight ORDER BY e.name
            """,
            {
                "video": video_id,
                "hour": window_start("hour", current_hour),
                "day": window_start("day", current_hour),
                "week": window_start("week", current_hour),
                "now": timezone.now().timestamp(),
                "hl": hl,
            },
        )
        rows = cur.fetchall()
    breakdown: dict[str, list[dict[str, Any]]] = {w: [] for w in rk.WINDOWS}
    for name, weight, *values in rows:
        for i, window in enumerate(rk.WINDOWS):
            events, units = int(values[2 * i]), float(values[2 * i + 1])
            breakdown[window].append(
                {
                    "type": name,
                    "weight": weight,
                    "events": events,
                    "units": round(units, 6),
                    "score": round(weight * units, 6),
                }
            )
    return breakdown


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
    key = rk.ranking_key(window, cid)
    client = rk.redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.zrank(key, rk.member(video_id))
    pipe.hmget(rk.TREND, "t0", "hl")
    position, trend = pipe.execute()
    if position is None:
        return AroundPage(window=window, category=category_slug, video_id=video_id, results=[])
    start = max(0, int(position) - radius)
    rows = client.zrange(key, start, int(position) + radius, withscores=True)
    factor = _decay_factor(trend, timezone.now())
    results = _entries(client, key, window, rows, start, rk.snapshot_key(window, cid), factor)
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
    key = rk.ranking_key(window, cid)
    client = rk.redis_client()
    depth = settings.RANKING_SNAPSHOT_DEPTH
    pipe = client.pipeline(transaction=False)
    pipe.zrange(key, 0, depth - 1, withscores=True)
    pipe.hgetall(rk.snapshot_key(window, cid))
    pipe.hmget(rk.TREND, "t0", "hl")
    rows, snap, trend = pipe.execute()
    taken = snap.pop(b"_taken_at", None)
    if taken is None:
        return Movers(window=window, category=category_slug, since=None, climbers=[], new_entries=[])
    entries = _entries(client, key, window, rows, 0, rk.snapshot_key(window, cid), _decay_factor(trend, timezone.now()))
    climbers: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for e in entries:
        item: dict[str, Any] = {"rank": e.rank, "previous_rank": e.previous_rank, "score": e.score, "video": e.video}
        if e.previous_rank is None:
            new.append(item)
        elif e.previous_rank > e.rank:
            climbers.append({**item, "change": e.previous_rank - e.rank})
    climbers.sort(key=lambda c: (-c["change"], c["rank"]))
    since = datetime.fromisoformat(taken.decode()).astimezone(UTC)
    return Movers(
        window=window, category=category_slug, since=since, climbers=climbers[:limit], new_entries=new[:limit]
    )
