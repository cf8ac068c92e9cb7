"""The global rankings: the union of the category rankings, merged when read.

A published video is ranked in its category's scope only, and its score there is its global
score; so a window's global list is exactly the categories' lists merged in their common order
(stored score, then member). No global ranking is stored, which halves the sorted-set writes of
every event, and the dearer half: the global sets are the largest (docs/benchmarks.md).

- A page near the top merges each category's first offset+limit entries.
- A deeper page first finds each category's share of the entries before it (``_starts``: pick
  the category with the widest range of candidates, split it at its middle entry, count each
  category's entries before that pivot, narrow every range), then merges from there.
- A standing is a sum of ZCOUNTs; a position a sum of per-category counts (``BELOW``).

On one node every step reads all categories in one MULTI/EXEC, so it sees one state of them
all, and the hot reads are one script call each (leaderboard.lua: TOP_UNION for a page near the
top, VIDEO_STANDINGS for a video's standings; leaderboard.reads calls them). On a cluster each
category is its own slot and one step's reads go out as one pipeline.

Trending: each scope stores its scores relative to its own t0. A rebase moves every scope to the
same t0, one after another; until it is through, a category's scores are brought to the first
category's t0 before they are compared. While the t0s are equal (always, but for those moments)
the factors are exactly 1 and the order is exact.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any

from core.redis import is_cluster, redis_client
from leaderboard import keys as rk
from leaderboard.lua import BELOW, UNION_COUNTS, script
from leaderboard.windows import WINDOWS

# A page ending at most this deep merges the categories' heads; a deeper one selects its start.
HEAD_DEPTH = 1000

Row = tuple[bytes, float]  # (member, stored score on the union's scale)


@dataclass(frozen=True, slots=True)
class Lists:
    """One window's category lists as one read saw them."""

    window: str
    category_ids: tuple[int, ...]
    keys: tuple[str, ...]
    cards: tuple[int, ...]
    # Multiply a category's stored score by its scale to bring it to the union's (trending: the
    # first category's t0); 1.0 everywhere else.
    scales: tuple[float, ...]
    trend: tuple[bytes | None, bytes | None]  # the union's t0 and half-life

    @property
    def total(self) -> int:
        return sum(self.cards)

    def bound(self, index: int, stored: float) -> str:
        """A union-scale score as an exact ZCOUNT bound of one category's list."""
        scale = self.scales[index]
        return repr(stored if scale == 1.0 else stored / scale)


# The category ids of the last read. Every read checks them in the same round trip (rk.CATS) and
# reads again when they changed: a category created a moment ago is in the next answer.
_known: list[tuple[int, ...]] = [()]


class _Unsettled(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the categories kept changing while the rankings were read")


def with_categories(call: Callable[[tuple[int, ...], str], Any]) -> Any:
    """``call(ids, named)`` of a one-node script (leaderboard.lua._UNION) told the category ids last
    read, as ids and as the text the script compares; called again with the ids a 'stale' reply
    names. Its reply, or None when the categories kept changing."""
    for _ in range(3):
        ids = _known[0]
        out = call(ids, ",".join(map(str, ids)))
        if not (out and out[0] == b"stale"):
            return out
        _known[0] = tuple(int(i) for i in out[1].split(b",") if i)
    return None


def _pipeline(client: Any) -> Any:
    return client.pipeline(transaction=not is_cluster())


def _consistent(queue: Callable[[Any, tuple[int, ...]], None]) -> tuple[tuple[int, ...], list[Any]]:
    """The category ids and the replies of what ``queue(pipe, ids)`` queues, in one round trip
    that also reads the slug index: read again when the categories changed under it."""
    client = redis_client()
    for _ in range(3):
        ids = _known[0]
        pipe = _pipeline(client)
        pipe.hvals(rk.CATS)
        queue(pipe, ids)
        out = pipe.execute()
        current = tuple(sorted({int(v) for v in out[0]}))
        if current == ids:
            return ids, out[1:]
        _known[0] = current
    raise _Unsettled


def _read(window: str, extra: Callable[[Any, Sequence[str]], None]) -> tuple[Lists, list[Any]]:
    """One step's read of every category list of ``window``: counts and trend state, plus what
    ``extra(pipe, keys)`` queues."""

    def queue(pipe: Any, ids: tuple[int, ...]) -> None:
        keys = [rk.ranking_key(window, cid) for cid in ids]
        for key in keys:
            pipe.zcard(key)
        if window == "trending":
            for cid in ids:
                pipe.hmget(rk.trend_key(rk.scope_for(cid)), "t0", "hl")
        extra(pipe, keys)

    ids, out = _consistent(queue)
    n = len(ids)
    cards = tuple(int(c) for c in out[:n])
    rest = out[n:]
    scales: tuple[float, ...] = (1.0,) * n
    trend: tuple[bytes | None, bytes | None] = (None, None)
    if window == "trending":
        trends, rest = rest[:n], rest[n:]
        scales, trend = _trending_scales(trends)
    return Lists(window, ids, tuple(rk.ranking_key(window, cid) for cid in ids), cards, scales, trend), rest


def _trending_scales(trends: Sequence[Sequence[bytes | None]]) -> tuple[tuple[float, ...], tuple[Any, Any]]:
    known = [t for t in trends if t[0] is not None and t[1] is not None]
    if not known:
        return (1.0,) * len(trends), (None, None)
    t0_ref, hl = known[0][0], known[0][1]
    assert t0_ref is not None and hl is not None
    ref, half_life = float(t0_ref), float(hl)
    scales = tuple(
        1.0 if t[0] is None or t[0] == t0_ref else float(2.0 ** ((float(t[0]) - ref) / half_life)) for t in trends
    )
    return scales, (t0_ref, hl)


def _merged(lists: Lists, per_list: Sequence[Sequence[tuple[bytes, float]]]) -> list[Row]:
    """Rows of several categories (each best first) as one list in the union's order."""
    scaled = [
        rows if lists.scales[i] == 1.0 else [(m, s * lists.scales[i]) for m, s in rows]
        for i, rows in enumerate(per_list)
    ]
    return list(heapq.merge(*scaled, key=lambda row: (row[1], row[0])))


@dataclass(frozen=True, slots=True)
class UnionPage:
    total: int
    rows: list[Row]
    better: int  # entries scored strictly better than the first row
    trend: tuple[bytes | None, bytes | None]


def union_page(*, window: str, offset: int, limit: int) -> UnionPage:
    """Entries ``offset`` .. ``offset + limit - 1`` of the window's global list."""
    stop = offset + limit
    if stop <= HEAD_DEPTH:

        def heads(pipe: Any, keys: Sequence[str]) -> None:
            for key in keys:
                pipe.zrange(key, 0, stop - 1, withscores=True)

        lists, per_list = _read(window, heads)
        head = _merged(lists, per_list)
        rows = head[offset:stop]
        better = _better_in(head, rows[0][1]) if rows else 0
        return UnionPage(lists.total, rows, better, lists.trend)
    lists, _ = _read(window, lambda pipe, keys: None)
    if offset >= lists.total:
        return UnionPage(lists.total, [], 0, lists.trend)
    starts = _starts(lists, offset)
    pipe = _pipeline(redis_client())
    for key, start in zip(lists.keys, starts, strict=True):
        pipe.zrange(key, start, start + limit - 1, withscores=True)
    rows = list(islice(_merged(lists, pipe.execute()), limit))
    better = union_counts(lists=lists, stored=rows[0][1]) if rows else 0
    return UnionPage(lists.total, rows, better, lists.trend)


def _better_in(head: Sequence[Row], stored: float) -> int:
    """Rows of a merged head scored strictly better than ``stored`` (the head holds all of them)."""
    lo, hi = 0, len(head)
    while lo < hi:
        mid = (lo + hi) // 2
        if head[mid][1] < stored:
            lo = mid + 1
        else:
            hi = mid
    return lo


def union_lists(*, window: str) -> Lists:
    return _read(window, lambda pipe, keys: None)[0]


def union_counts(*, lists: Lists, stored: float) -> int:
    """Entries of the union scored strictly better than the union-scale score ``stored``."""
    pipe = _pipeline(redis_client())
    for i, key in enumerate(lists.keys):
        pipe.zcount(key, "-inf", "(" + lists.bound(i, stored))
    return sum(int(n) for n in pipe.execute())


def _below(lists: Lists, stored: float, member: bytes, skip: int | None = None) -> list[int]:
    """Per category, its entries ordered before (stored, member); ``skip``'s is left 0."""
    pipe = _pipeline(redis_client())
    below = script(BELOW)
    asked = [i for i in range(len(lists.keys)) if i != skip]
    for i in asked:
        below(keys=[lists.keys[i]], args=[lists.bound(i, stored), member], client=pipe)
    counts = [0] * len(lists.keys)
    for i, n in zip(asked, pipe.execute(), strict=True):
        counts[i] = int(n)
    return counts


def union_position(*, lists: Lists, stored: float, member: bytes) -> int:
    """0-based place of (stored, member) in the union: the entries ordered before it."""
    return sum(_below(lists, stored, member))


def _starts(lists: Lists, position: int) -> list[int]:
    """Per category, how many of its entries are among the first ``position`` of the union.

    Invariant: the answer for category k lies in [lo[k], hi[k]]. Each step halves the widest range.
    """
    lo = [0] * len(lists.keys)
    hi = list(lists.cards)
    client = redis_client()
    while True:
        j = max(range(len(lo)), key=lambda k: hi[k] - lo[k])
        if hi[j] <= lo[j]:
            return lo
        mid = (lo[j] + hi[j]) // 2
        pivot = client.zrange(lists.keys[j], mid, mid, withscores=True)
        if not pivot:  # the list shrank under the read
            hi[j] = mid
            continue
        member, stored = pivot[0]
        stored *= lists.scales[j]
        counts = _below(lists, stored, member, skip=j)
        counts[j] = mid
        if sum(counts) < position:  # the pivot and everything before it come before the page
            lo = [max(a, c) for a, c in zip(lo, counts, strict=True)]
            lo[j] = max(lo[j], mid + 1)
        else:
            hi = [min(b, c) for b, c in zip(hi, counts, strict=True)]
            hi[j] = min(hi[j], mid)
        hi = [max(a, b) for a, b in zip(lo, hi, strict=True)]


def union_around(*, lists: Lists, stored: float, member: bytes, radius: int) -> tuple[list[Row], int]:
    """The entry (stored, member) with up to ``radius`` neighbours on each side, and the 0-based
    place of the first row; ([], 0) when the entry is not in the union."""
    counts = _below(lists, stored, member)
    pipe = _pipeline(redis_client())
    firsts = [max(0, c - radius) for c in counts]
    for key, first, c in zip(lists.keys, firsts, counts, strict=True):
        pipe.zrange(key, first, c + radius, withscores=True)
    merged = _merged(lists, pipe.execute())
    at = next((i for i, row in enumerate(merged) if row[0] == member), None)
    if at is None:
        return [], 0
    start = max(0, at - radius)
    # Rows merged before the window are the union's entries before ``firsts``, plus ``start``.
    return merged[start : at + radius + 1], sum(firsts) + start


@lru_cache(maxsize=256)
def category_group(category_id: int) -> tuple[str, ...]:
    """A category's keys as the standings scripts take them: its rankings in WINDOWS order, then its
    trend hash."""
    return (*(rk.ranking_key(w, category_id) for w in WINDOWS), rk.trend_key(rk.scope_for(category_id)))


def union_standing_counts(*, bounds: Sequence[bytes | None], t0: bytes | None) -> list[tuple[int, int]]:
    """Per window (WINDOWS order): the global list's entries, and those of them scored strictly
    better than the window's bound (a video's stored score in its category, ZSCORE's reply; the
    trending one relative to ``t0``, its category's). A None bound counts no better entries."""
    counts = script(UNION_COUNTS)
    args = [t0 or b"", *(b"" if b is None else b for b in bounds)]

    def queue(pipe: Any, ids: tuple[int, ...]) -> None:
        groups = [category_group(cid) for cid in ids]
        if is_cluster():
            for group in groups:
                counts(keys=group, args=args, client=pipe)
        elif groups:
            counts(keys=[k for group in groups for k in group], args=args, client=pipe)

    sums = [0] * (2 * len(WINDOWS))
    for reply in _consistent(queue)[1]:
        sums = [a + int(b) for a, b in zip(sums, reply, strict=True)]
    return [(sums[2 * i], sums[2 * i + 1]) for i in range(len(WINDOWS))]


def union_rows(*, window: str) -> list[Row]:
    """Every entry of the window's global list, best first (tools and checks; no request reads this)."""

    def whole(pipe: Any, keys: Sequence[str]) -> None:
        for key in keys:
            pipe.zrange(key, 0, -1, withscores=True)

    lists, per_list = _read(window, whole)
    return _merged(lists, per_list)
