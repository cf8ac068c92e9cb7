"""Read primitives of the projection. A category's list read is O(log N + page) in Redis on one
scope (one cluster slot): a top-N page is one Lua call (leaderboard.lua.TOP), a video's standings
in its category one Lua call (leaderboard.lua.STANDINGS), which also reads the video's metadata
when the caller asks (``video_standings``). A global list is the union of the category lists,
merged when read (leaderboard.union). On one node a page near the top is one script call
(TOP_UNION) and a video's standings with its metadata one (VIDEO_STANDINGS); on a cluster a page
takes a pipelined round trip for the categories' heads and one for its metadata and previous
ranks, and a video's global standings one more call after its category's. Nothing here reads
Postgres."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.utils import timezone

from core.redis import is_cluster, redis_client
from leaderboard import keys as rk
from leaderboard import union
from leaderboard.lua import STANDINGS, TOP, TOP_UNION, VIDEO_STANDINGS, script
from leaderboard.windows import WINDOW_BITS, WINDOWS


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
    cats = redis_client().hgetall(rk.CATS)
    return [(None, None), *sorted((int(cid), slug.decode()) for slug, cid in cats.items())]


def category_id_cached(*, slug: str) -> int | None:
    cid = redis_client().hget(rk.CATS, slug)
    return None if cid is None else int(cid)


def video_statuses(*, video_ids: Sequence[int]) -> list[str | None]:
    """Each video's cached status (one HMGET), None when the cache does not hold the video."""
    if not video_ids:
        return []
    return [s.decode() if s is not None else None for s in redis_client().hmget(rk.STATUS, list(video_ids))]


def video_meta_cached(*, video_id: int) -> tuple[str, int | None, dict[str, Any]] | None:
    """(status, category id, public video fields) from the metadata cache; None when not cached."""
    packed = redis_client().hget(rk.meta_key(rk.GLOBAL), str(video_id))
    if packed is None:
        return None
    data = json.loads(packed)
    return str(data["status"]), int(data["category_id"]), _video_fields(data, video_id)


def _decay_factor(trend: Sequence[bytes | None], now: datetime) -> float:
    """Stored trending scores are relative to t0; divide by 2^((now - t0)/half-life) to read them."""
    if trend[0] is None or trend[1] is None:
        return 1.0
    t0, hl = float(trend[0]), float(trend[1])
    return float(2.0 ** ((t0 - now.timestamp()) / hl))


def _score(window: str, stored: float, factor: float) -> float:
    value = -stored * (factor if window == "trending" else 1.0)
    return round(value, 6) + 0.0  # +0.0 turns -0.0 into 0.0


def videos_meta_cached(*, video_ids: Sequence[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """(status, public video fields) of each of ``video_ids`` the metadata cache holds, in one HMGET."""
    if not video_ids:
        return {}
    packed = redis_client().hmget(rk.meta_key(rk.GLOBAL), [str(v) for v in video_ids])
    found = {}
    for vid, raw in zip(video_ids, packed, strict=True):
        if raw is not None:
            data = json.loads(raw)
            found[vid] = (str(data.get("status")), _video_fields(data, vid))
    return found


def _video(packed: bytes | None, video_id: int) -> dict[str, Any]:
    """The public fields of a video from its packed metadata (leaderboard.store.VideoMeta), a dict of
    the caller's own."""
    return dict(_video_decoded(packed, video_id))


# The same few pages are read over and over, and decoding their metadata was about a quarter of
# a top-20 read. The fields are a function of the packed bytes and the id alone, so an entry never
# goes stale: changed metadata is other bytes. Bounded: a few thousand videos' fields.
@lru_cache(maxsize=4096)
def _video_decoded(packed: bytes | None, video_id: int) -> dict[str, Any]:
    return _video_fields(json.loads(packed) if packed is not None else {}, video_id)


def _video_fields(data: dict[str, Any], video_id: int) -> dict[str, Any]:
    return {
        "id": video_id,
        "title": data.get("title") or "",
        "category": data.get("category") or "",
        "owner": data.get("owner") or "",
        "thumbnail_url": data.get("thumbnail_url") or "",
        "duration_seconds": int(data.get("duration_seconds") or 0),
        "published_at": data.get("published_at") or None,
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
    window: str,
    category_id: int,
    rows: list[tuple[bytes, float]],
    first_position: int,
    factor: float,
) -> list[RankingEntry]:
    """Rank, metadata and previous rank of a page of rows, in one round trip to the scope's slot."""
    if not rows:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.zcount(rk.ranking_key(window, category_id), "-inf", f"({rows[0][1]!r}")
    ids = [str(rk.video_id_of(m)) for m, _ in rows]
    pipe.hmget(rk.meta_key(rk.scope_for(category_id)), ids)
    pipe.hmget(rk.snapshot_key(window, category_id), ids)
    better, metas, previous = pipe.execute()
    scored = [(int(vid), s) for vid, (_, s) in zip(ids, rows, strict=True)]
    return _ranked_entries(window, scored, first_position, int(better) + 1, metas, previous, factor)


def _ranked_entries(
    window: str,
    scored: list[tuple[int, float]],
    first_position: int,
    first_rank: int,
    metas: Sequence[bytes | None],
    previous: Sequence[bytes | None],
    factor: float,
) -> list[RankingEntry]:
    ranked = competition_ranks(scored, first_position=first_position, first_rank=first_rank)
    # RankingEntry(rank, score, previous_rank, video), positionally: this loop runs for every entry read.
    return [
        RankingEntry(rank, _score(window, stored, factor), None if prev is None else int(prev), _video(meta, vid))
        for (vid, rank, stored), meta, prev in zip(ranked, metas, previous, strict=True)
    ]


def ranking_top(
    *, window: str, category_id: int | None, category_slug: str | None, limit: int, offset: int
) -> RankingPage:
    if category_id is None:
        return _union_top(window=window, limit=limit, offset=offset)
    key = rk.ranking_key(window, category_id)
    # One round trip (leaderboard.lua.TOP) for the count, the page, its ties, metadata and previous ranks.
    scope = rk.scope_for(category_id)
    out = script(TOP)(
        keys=[key, rk.trend_key(scope), rk.snapshot_key(window, category_id), rk.meta_key(scope)],
        args=[offset, offset + limit - 1],
    )
    return _page_of(out, window=window, category_slug=category_slug, limit=limit, offset=offset)


def _page_of(out: Sequence[Any], *, window: str, category_slug: str | None, limit: int, offset: int) -> RankingPage:
    """A page from a TOP or TOP_UNION reply."""
    total, flat, trend = out[0], out[1], out[2]
    now = timezone.now()
    page = RankingPage(
        window=window, category=category_slug, generated_at=now, total=int(total), limit=limit, offset=offset
    )
    if flat:
        scored = list(zip(map(rk.video_id_of, flat[0::2]), map(float, flat[1::2]), strict=True))
        factor = _decay_factor(trend, now)
        page.results = _ranked_entries(window, scored, offset, int(out[3]) + 1, out[4], out[5], factor)
    return page


# A global page ending at most this deep is merged by one script call on one node (TOP_UNION):
# it holds Valkey for (offset + limit) x categories steps. Deeper, or on a cluster, the merge is
# leaderboard.union's.
SCRIPT_MERGE_DEPTH = 200


def _union_top(*, window: str, limit: int, offset: int) -> RankingPage:
    if not is_cluster() and offset + limit <= SCRIPT_MERGE_DEPTH:

        def top(ids: tuple[int, ...], named: str) -> Any:
            keys = _top_union_keys(window, ids)
            return script(TOP_UNION)(keys=keys, args=[offset, limit, named, int(window == "trending")])

        out = union.with_categories(top)
        if out is not None:
            return _page_of(out, window=window, category_slug=None, limit=limit, offset=offset)
    found = union.union_page(window=window, offset=offset, limit=limit)
    now = timezone.now()
    page = RankingPage(window=window, category=None, generated_at=now, total=found.total, limit=limit, offset=offset)
    page.results = _union_entries(window, found.rows, offset, found.better, _decay_factor(found.trend, now))
    return page


@lru_cache(maxsize=64)
def _top_union_keys(window: str, category_ids: tuple[int, ...]) -> tuple[str, ...]:
    """TOP_UNION's keys for a window and these categories (built once: the top page is the hot read)."""
    return (
        *(rk.ranking_key(window, cid) for cid in category_ids),
        *(rk.trend_key(rk.scope_for(cid)) for cid in category_ids),
        rk.CATS, rk.snapshot_key(window, None), rk.meta_key(rk.GLOBAL),
    )  # fmt: skip


def _union_entries(
    window: str, rows: list[union.Row], first_position: int, better: int, factor: float
) -> list[RankingEntry]:
    """Rank, metadata and previous rank of a page of the union, in one round trip (the global
    scope's metadata and snapshot hashes share a slot)."""
    if not rows:
        return []
    ids = [str(rk.video_id_of(m)) for m, _ in rows]
    pipe = redis_client().pipeline(transaction=False)
    pipe.hmget(rk.meta_key(rk.GLOBAL), ids)
    pipe.hmget(rk.snapshot_key(window, None), ids)
    metas, previous = pipe.execute()
    scored = [(int(vid), s) for vid, (_, s) in zip(ids, rows, strict=True)]
    return _ranked_entries(window, scored, first_position, better + 1, metas, previous, factor)


def ranked_tops(
    *, depth: int, lists: Sequence[tuple[str, int | None]] | None = None
) -> list[tuple[str, int | None, list[list[Any]]]]:
    """(window, category id, [[video id, rank, score], ...]) of the top ``depth`` of each list, best first.

    ``lists`` are (window, category id) pairs; None means every window of every scope. Ranks come
    from the stored scores (ties exactly as a page read ranks them); scores are the displayed ones,
    trending decayed to this moment, so a stored copy keeps meaning after a rebase.
    """
    if lists is None:
        scope_ids = [cid for cid, _ in ranking_scopes()]
        lists = [(w, cid) for w in WINDOWS for cid in scope_ids]
    wanted = list(lists)
    stored = [(w, cid) for w, cid in wanted if cid is not None]
    scopes = sorted({cid for _, cid in stored})
    pipe = redis_client().pipeline(transaction=False)
    for window, cid in stored:
        pipe.zrange(rk.ranking_key(window, cid), 0, depth - 1, withscores=True)
    for scope_cid in scopes:
        pipe.hmget(rk.trend_key(rk.scope_for(scope_cid)), "t0", "hl")
    out = pipe.execute()
    now = timezone.now()
    factors = {c: _decay_factor(trend, now) for c, trend in zip(scopes, out[len(stored) :], strict=True)}
    read: dict[tuple[str, int | None], tuple[Sequence[tuple[bytes, float]], float]] = {
        (window, cid): (rows, factors[cid]) for (window, cid), rows in zip(stored, out[: len(stored)], strict=True)
    }
    for window, list_cid in wanted:
        if list_cid is None:
            page = union.union_page(window=window, offset=0, limit=depth)
            read[(window, None)] = (page.rows, _decay_factor(page.trend, now))
    tops: list[tuple[str, int | None, list[list[Any]]]] = []
    for window, list_cid in wanted:
        rows, factor = read[(window, list_cid)]
        ranked = competition_ranks([(rk.video_id_of(m), s) for m, s in rows])
        tops.append((window, list_cid, [[vid, rank, _score(window, s, factor)] for vid, rank, s in ranked]))
    return tops


@dataclass
class Standing:
    window: str
    scope: str
    rank: int | None
    score: float | None
    percentile: float | None
    total: int


def ranking_standings(*, video_id: int, category_id: int, windows: Sequence[str] = WINDOWS) -> list[Standing]:
    """The video's rank, score and percentile in each of ``windows``, globally and in its category."""
    reply = script(STANDINGS)(keys=union.category_group(category_id), args=[rk.member(video_id)])[0]
    return _standings_of(reply, windows=windows)


# On a cluster: video id -> the category its cached metadata named at its last standings read, a
# guess, so that the category's standings are read beside the metadata rather than after it. The
# metadata read decides: a wrong or missing guess costs the call the read took anyway. Bounded:
# emptied when full. One node needs no guess: VIDEO_STANDINGS reads the category from the metadata.
_category_guess: dict[int, int] = {}
_CATEGORY_GUESS_MAX = 100_000


@dataclass
class VideoStandings:
    status: str
    category_id: int | None
    video: dict[str, Any]  # public fields, as video_meta_cached
    standings: list[Standing]  # as ranking_standings; empty unless the video is published in a category


def video_standings(*, video_id: int, windows: Sequence[str] = WINDOWS) -> VideoStandings | None:
    """A video's cached metadata with its standings in ``windows`` (ranking_standings): one call on
    one node (VIDEO_STANDINGS, which reads only those windows), on a cluster as few as the category
    guess allows; None when the metadata cache does not hold the video."""
    member = rk.member(video_id)
    if not is_cluster():
        mask = sum(WINDOW_BITS[w] for w in set(windows))

        def read(ids: tuple[int, ...], named: str) -> Any:
            return script(VIDEO_STANDINGS)(keys=_video_standings_keys(ids), args=[member, video_id, named, mask])

        out = union.with_categories(read)
        if out == []:
            return None
        if out is not None:
            found = _video_standings_of(out[0], video_id)
            if found.status == "published" and found.category_id is not None:
                if len(out) == 3:
                    counts = [(int(out[2][2 * i]), int(out[2][2 * i + 1])) for i in range(len(WINDOWS))]
                    found.standings = _standings_of(out[1], counts, windows=windows)
                else:  # its category is in no group: not in the slug index yet
                    found.standings = ranking_standings(
                        video_id=video_id, category_id=found.category_id, windows=windows
                    )
            return found
    guess = _category_guess.get(video_id)
    cat_keys = union.category_group(guess) if guess is not None else ()
    meta = (rk.meta_key(rk.GLOBAL),)
    standings = script(STANDINGS)
    if is_cluster():  # the metadata hash is in the global scope's slot, the category in its own
        (packed,) = standings(keys=meta, args=[member, video_id])
        replies = standings(keys=cat_keys, args=[member]) if cat_keys else []
    else:
        *replies, packed = standings(keys=cat_keys + meta, args=[member, video_id])
    if packed is None:
        return None
    found = _video_standings_of(packed, video_id)
    category_id = found.category_id
    if found.status != "published" or category_id is None:
        return found
    if category_id != guess:
        if len(_category_guess) >= _CATEGORY_GUESS_MAX:
            _category_guess.clear()
        _category_guess[video_id] = category_id
        replies = standings(keys=union.category_group(category_id), args=[member])
    found.standings = _standings_of(replies[0], windows=windows)
    return found


@lru_cache(maxsize=64)
def _video_standings_keys(category_ids: tuple[int, ...]) -> tuple[str, ...]:
    """VIDEO_STANDINGS' keys for these categories."""
    return (*(k for cid in category_ids for k in union.category_group(cid)), rk.CATS, rk.meta_key(rk.GLOBAL))


def _video_standings_of(packed: bytes, video_id: int) -> VideoStandings:
    """A video's status, category and public fields from its packed metadata; no standings yet."""
    data = json.loads(packed)
    category_id = data.get("category_id")
    return VideoStandings(
        str(data["status"]), None if category_id is None else int(category_id), _video_fields(data, video_id), []
    )


def _standings_of(
    cat_reply: Sequence[Any], counts: Sequence[tuple[int, int]] | None = None, *, windows: Sequence[str] = WINDOWS
) -> list[Standing]:
    """Both scopes' standings in ``windows`` from the category's STANDINGS reply: the global scores
    are the category's, the global counts (entries, better per window) those of the union
    (leaderboard.union), read here unless given."""
    t0, scores = cat_reply[0], cat_reply[2::3]
    if counts is None:
        bounds = [score if w in windows else None for w, score in zip(WINDOWS, scores, strict=True)]
        counts = union.union_standing_counts(bounds=bounds, t0=t0)
    glob_reply = [t0, cat_reply[1]]
    for score, (total, better) in zip(scores, counts, strict=True):
        glob_reply += [score, total, better if score is not None else None]
    now = timezone.now()
    glob, cat = _scope_standings("global", glob_reply, now), _scope_standings("category", cat_reply, now)
    # Window by window, the global standing before the category one.
    return [standing for pair in zip(glob, cat, strict=True) for standing in pair if standing.window in windows]


def _scope_standings(scope: str, reply: Sequence[Any], now: datetime) -> list[Standing]:
    """Standings from one STANDINGS reply: t0, hl, then (score, total, better) per window."""
    values = iter(reply)
    factor = _decay_factor((next(values), next(values)), now)
    standings = []
    for window, stored, total, better in zip(WINDOWS, values, values, values, strict=True):
        if stored is None:
            standings.append(Standing(window, scope, None, None, None, total))
            continue
        # Share of the *other* ranked videos that do not beat it: rank 1 is 100 whatever the size
        # of the ranking (an only video too), the last is 0, and tied videos share a value.
        percentile = 100.0 if total <= 1 else round(100.0 * (total - better - 1) / (total - 1), 2)
        standings.append(Standing(window, scope, better + 1, _score(window, float(stored), factor), percentile, total))
    return standings


def ranking_around(
    *, video_id: int, window: str, radius: int, category_id: int | None, video_category_id: int
) -> list[RankingEntry]:
    """The video and up to ``radius`` neighbours above and below it in one ranking (``category_id``
    None: the global one; ``video_category_id`` is the video's category)."""
    if category_id is None:
        return _union_around(video_id=video_id, window=window, radius=radius, video_category_id=video_category_id)
    key = rk.ranking_key(window, category_id)
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.zrank(key, rk.member(video_id))
    pipe.hmget(rk.trend_key(rk.scope_for(category_id)), "t0", "hl")
    position, trend = pipe.execute()
    if position is None:
        return []
    start = max(0, int(position) - radius)
    rows = client.zrange(key, start, int(position) + radius, withscores=True)
    factor = _decay_factor(trend, timezone.now())
    return _entries(client, window, category_id, rows, start, factor)


def _union_around(*, video_id: int, window: str, radius: int, video_category_id: int) -> list[RankingEntry]:
    member = rk.member(video_id).encode()
    stored = redis_client().zscore(rk.ranking_key(window, video_category_id), member)
    if stored is None:
        return []
    lists = union.union_lists(window=window)
    if video_category_id in lists.category_ids:
        stored *= lists.scales[lists.category_ids.index(video_category_id)]
    rows, first = union.union_around(lists=lists, stored=stored, member=member, radius=radius)
    if not rows:
        return []
    better = union.union_counts(lists=lists, stored=rows[0][1])
    return _union_entries(window, rows, first, better, _decay_factor(lists.trend, timezone.now()))


def ranking_top_since_snapshot(
    *, window: str, category_id: int | None, depth: int
) -> tuple[list[RankingEntry], datetime | None]:
    """The top ``depth`` entries with their previous ranks, and when that snapshot was taken."""
    if category_id is None:
        taken_at = redis_client().hget(rk.snapshot_key(window, None), "_taken_at")
        if taken_at is None:
            return [], None
        page = union.union_page(window=window, offset=0, limit=depth)
        entries = _union_entries(window, page.rows, 0, page.better, _decay_factor(page.trend, timezone.now()))
        return entries, datetime.fromisoformat(taken_at.decode()).astimezone(UTC)
    key = rk.ranking_key(window, category_id)
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.zrange(key, 0, depth - 1, withscores=True)
    pipe.hget(rk.snapshot_key(window, category_id), "_taken_at")
    pipe.hmget(rk.trend_key(rk.scope_for(category_id)), "t0", "hl")
    rows, taken, trend = pipe.execute()
    if taken is None:
        return [], None
    factor = _decay_factor(trend, timezone.now())
    entries = _entries(client, window, category_id, rows, 0, factor)
    return entries, datetime.fromisoformat(taken.decode()).astimezone(UTC)
