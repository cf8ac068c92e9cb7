"""The global list as the union of the category lists, against a model: every entry of every
category sorted by (stored score, member), which is the order one sorted set of them all keeps.

Scores are drawn from a few values, so ties run across categories and across page edges; the
deep-page selection is forced on small lists by lowering the head depth.
"""

from __future__ import annotations

import random

import pytest

from core.redis import redis_client
from leaderboard import keys as rk
from leaderboard import reads, union

pytestmark = pytest.mark.cluster

HL = 6 * 3600
T0 = 1_700_000_000 - 1_700_000_000 % 3600


def lists_write(rng: random.Random, window: str, categories: int, size: int, values: int) -> list[tuple[str, float]]:
    """Random category lists in Redis; returns the model: every entry, in the union's order."""
    client = redis_client()
    entries: list[tuple[str, float]] = []
    for cid in range(1, categories + 1):
        client.hset(rk.CATS, f"cat-{cid}", cid)
        client.hset(rk.trend_key(rk.scope_for(cid)), mapping={"t0": T0, "hl": HL})
        members = {rk.member(vid): -float(rng.randrange(1, values + 1)) for vid in rng.sample(range(1, 10**6), size)}
        if members:
            client.zadd(rk.ranking_key(window, cid), members)
        entries += members.items()
    return sorted(entries, key=lambda e: (e[1], e[0]))


def as_model(rows: list[tuple[bytes, float]]) -> list[tuple[str, float]]:
    return [(m.decode(), s) for m, s in rows]


@pytest.mark.parametrize("head_depth", [union.HEAD_DEPTH, 7])
def test_every_page_is_the_slice_of_the_sorted_union(monkeypatch: pytest.MonkeyPatch, head_depth: int) -> None:
    monkeypatch.setattr(union, "HEAD_DEPTH", head_depth)
    rng = random.Random(head_depth)
    model = lists_write(rng, "day", categories=5, size=60, values=6)
    lists_write(rng, "week", categories=5, size=0, values=1)  # other windows do not leak in
    assert len(model) == 300
    for offset, limit in [(0, 20), (0, 100), (13, 7), (57, 100), (150, 1), (299, 5), (300, 5), (1000, 3)]:
        page = union.union_page(window="day", offset=offset, limit=limit)
        assert page.total == 300
        assert as_model(page.rows) == model[offset : offset + limit], (offset, limit)
        if page.rows:
            assert page.better == sum(1 for _, s in model if s < page.rows[0][1])


def model_ranks(model: list[tuple[str, float]]) -> list[int]:
    """Competition ranks of the model's entries: 1 + the entries scored strictly better."""
    return [1 + next(i for i, e in enumerate(model) if e[1] == s) for _, s in model]


@pytest.mark.parametrize("merge_depth", [reads.SCRIPT_MERGE_DEPTH, 7])
def test_a_global_page_reads_the_union_with_its_ranks(monkeypatch: pytest.MonkeyPatch, merge_depth: int) -> None:
    """The API's page of a global list, merged by one script on one node (the Python merge on a
    cluster, or deeper than the script merges): the model's slice, its competition ranks and scores."""
    monkeypatch.setattr(reads, "SCRIPT_MERGE_DEPTH", merge_depth)
    model = lists_write(random.Random(merge_depth), "week", categories=4, size=50, values=5)
    ranks = model_ranks(model)
    for offset, limit in [(0, 20), (3, 9), (45, 100), (199, 1), (200, 5)]:
        page = reads.ranking_top(window="week", category_id=None, category_slug=None, limit=limit, offset=offset)
        assert page.total == 200
        got = [(rk.member(e.video["id"]), e.rank, e.score) for e in page.results]
        want = [(m, r, -s) for (m, s), r in zip(model, ranks, strict=True)][offset : offset + limit]
        assert got == want, (offset, limit)


def test_a_category_created_between_reads_is_in_the_next_read() -> None:
    rng = random.Random(3)
    model = lists_write(rng, "hour", categories=2, size=10, values=3)
    assert as_model(union.union_page(window="hour", offset=0, limit=100).rows) == model
    redis_client().hset(rk.CATS, "late", 9)
    redis_client().zadd(rk.ranking_key("hour", 9), {rk.member(5): -100.0})
    assert union.union_page(window="hour", offset=0, limit=1).rows == [(rk.member(5).encode(), -100.0)]
    redis_client().hset(rk.CATS, "later", 10)
    redis_client().zadd(rk.ranking_key("hour", 10), {rk.member(6): -200.0})
    top = reads.ranking_top(window="hour", category_id=None, category_slug=None, limit=1, offset=0)
    assert [e.video["id"] for e in top.results] == [6] and top.total == len(model) + 2


def test_positions_and_neighbours_follow_the_model() -> None:
    rng = random.Random(11)
    model = lists_write(rng, "all", categories=4, size=40, values=4)
    lists = union.union_lists(window="all")
    for place in [0, 1, 39, 80, 159]:
        m, stored = model[place]
        assert union.union_position(lists=lists, stored=stored, member=m.encode()) == place
        rows, first = union.union_around(lists=lists, stored=stored, member=m.encode(), radius=3)
        assert first == max(0, place - 3)
        assert as_model(rows) == model[first : place + 4]
    # An entry that is not there counts the entries ordered before it, and has no neighbours.
    absent = rk.member(10**9 - 1).encode()
    assert union.union_position(lists=lists, stored=-2.0, member=absent) == sum(1 for e in model if e[1] <= -2.0)
    assert union.union_around(lists=lists, stored=-2.0, member=absent, radius=3) == ([], 0)


def test_trending_scores_of_a_category_not_yet_rebased_are_compared_on_one_scale() -> None:
    client = redis_client()
    for cid, t0 in [(1, T0), (2, T0 + HL)]:
        client.hset(rk.CATS, f"cat-{cid}", cid)
        client.hset(rk.trend_key(rk.scope_for(cid)), mapping={"t0": t0, "hl": HL})
    # Category 2's t0 is a half-life later: its stored scores are half of category 1's scale.
    client.zadd(rk.ranking_key("trending", 1), {rk.member(1): -3.0, rk.member(2): -1.0})
    client.zadd(rk.ranking_key("trending", 2), {rk.member(3): -1.0, rk.member(4): -0.25})
    page = union.union_page(window="trending", offset=0, limit=10)
    assert page.trend == (str(T0).encode(), str(HL).encode())
    top = reads.ranking_top(window="trending", category_id=None, category_slug=None, limit=10, offset=1)
    assert [(e.video["id"], e.rank) for e in top.results] == [(3, 2), (2, 3), (4, 4)]
    assert as_model(page.rows) == [
        (rk.member(1), -3.0),
        (rk.member(3), -2.0),
        (rk.member(2), -1.0),
        (rk.member(4), -0.5),
    ]
