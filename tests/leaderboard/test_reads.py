"""The read primitives against a model of their contract, on the real server.

A video's standing in one list: its rank is 1 + the number of members stored strictly better
(ties share a rank), its percentile the share of the other members that do not beat it, its
score the stored one negated (trending divided by 2^((now - t0) / half-life) with the scope's
own t0), rounded to 6 decimals; rank, score and percentile are None where it is not a member,
and the total is the list's size either way. A global list is every category's entries
together, compared by the scores they show (trending on one scale whatever each category's t0).
The model computes that from the scores it wrote, so a score that lost precision on its way
through Redis shows up as a wrong rank.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from redis.exceptions import ResponseError

from core.redis import is_cluster, redis_client
from leaderboard import keys as rk
from leaderboard import reads
from leaderboard.reads import Standing
from leaderboard.store import VideoMeta
from leaderboard.windows import WINDOWS

pytestmark = pytest.mark.cluster

T0 = 1_700_000_000 - 1_700_000_000 % 3600
HL = 6 * 3600
# Two half-lives after T0: trending scores stored relative to T0 read as a quarter of their value.
NOW = datetime.fromtimestamp(T0 + 2 * HL, tz=UTC)
CATEGORY, OTHER = 7, 8

Scores = dict[str, dict[str, float]]  # window -> member -> stored (negated) score
Categories = dict[int, tuple[Scores, int | None]]  # category id -> (its lists, its t0)


def member(vid: int) -> str:
    return rk.member(vid)


def scope_write(category_id: int, state: Scores, t0: int | None) -> None:
    client = redis_client()
    client.hset(rk.CATS, f"cat-{category_id}", category_id)
    for window, members in state.items():
        if members:
            client.zadd(rk.ranking_key(window, category_id), members)
    if t0 is not None:
        client.hset(rk.trend_key(rk.scope_for(category_id)), mapping={"t0": t0, "hl": HL})


def shown(window: str, stored: float, t0: int | None, now: datetime = NOW) -> float:
    """The score a stored value shows: trending decayed from its scope's t0 to now."""
    factor = 2.0 ** ((t0 - now.timestamp()) / HL) if window == "trending" and t0 is not None else 1.0
    return -stored * factor


def standing(window: str, scope: str, value: float | None, values: list[float]) -> Standing:
    total = len(values)
    if value is None:
        return Standing(window, scope, None, None, None, total)
    better = sum(1 for v in values if v > value)
    percentile = 100.0 if total <= 1 else round(100.0 * (total - better - 1) / (total - 1), 2)
    return Standing(window, scope, better + 1, round(value, 6) + 0.0, percentile, total)


def model_standings(*, vid: int, own: int, categories: Categories) -> list[Standing]:
    """Window by window, global then category, from the scores as written."""
    out = []
    for window in WINDOWS:
        state, t0 = categories[own]
        stored = state.get(window, {}).get(member(vid))
        value = None if stored is None else shown(window, stored, t0)
        every = [shown(window, s, t) for lists, t in categories.values() for s in lists.get(window, {}).values()]
        out.append(standing(window, "global", value, every))
        out.append(standing(window, "category", value, [shown(window, s, t0) for s in state.get(window, {}).values()]))
    return out


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads.timezone, "now", lambda: NOW)


def test_ties_share_a_rank_and_an_absent_video_has_only_the_total(frozen_now: None) -> None:
    # The category's t0 is a half-life later than the other's (a rebase between the two): the
    # same displayed trending score is stored at half the value.
    cat: Scores = {
        "hour": {member(1): -5.0, member(3): -3.0},
        "all": {member(1): -5.0},
        "trending": {member(1): -4.0},
        "rising": {member(1): -0.25},
    }
    other: Scores = {
        "hour": {member(2): -5.0},
        "day": {member(2): -1.0},
        "all": {member(2): 2.0},  # a net negative score
        "trending": {member(4): -8.0},
    }
    scope_write(CATEGORY, cat, T0 + HL)
    scope_write(OTHER, other, T0)
    got = {(s.window, s.scope): s for s in reads.ranking_standings(video_id=1, category_id=CATEGORY)}
    assert [(s.window, s.scope) for s in reads.ranking_standings(video_id=1, category_id=CATEGORY)] == [
        (w, scope) for w in WINDOWS for scope in ("global", "category")
    ]
    assert got["hour", "global"] == Standing("hour", "global", 1, 5.0, 100.0, 3)
    assert got["hour", "category"] == Standing("hour", "category", 1, 5.0, 100.0, 2)
    assert got["day", "global"] == Standing("day", "global", None, None, None, 1)
    assert got["week", "global"] == Standing("week", "global", None, None, None, 0)
    assert got["all", "global"] == Standing("all", "global", 1, 5.0, 100.0, 2)
    assert got["trending", "global"] == Standing("trending", "global", 1, 2.0, 100.0, 2)
    assert got["trending", "category"] == Standing("trending", "category", 1, 2.0, 100.0, 1)
    assert got["rising", "global"] == Standing("rising", "global", 1, 0.25, 100.0, 1)
    tied = {(s.window, s.scope): s for s in reads.ranking_standings(video_id=2, category_id=OTHER)}
    assert tied["hour", "global"] == Standing("hour", "global", 1, 5.0, 100.0, 3)
    assert tied["all", "global"] == Standing("all", "global", 2, -2.0, 0.0, 2)
    assert tied["hour", "category"] == Standing("hour", "category", 1, 5.0, 100.0, 1)
    last = {(s.window, s.scope): s for s in reads.ranking_standings(video_id=3, category_id=CATEGORY)}
    assert last["hour", "global"] == Standing("hour", "global", 3, 3.0, 0.0, 3)
    categories: Categories = {CATEGORY: (cat, T0 + HL), OTHER: (other, T0)}
    for vid, own in ((1, CATEGORY), (2, OTHER), (3, CATEGORY), (4, OTHER), (5, CATEGORY)):
        assert reads.ranking_standings(video_id=vid, category_id=own) == model_standings(
            vid=vid, own=own, categories=categories
        )


# Scores whose neighbours differ only in the last digits of a double: a score read back through
# a Lua number (14 significant digits) would tie them, or count the member as beating itself.
AWKWARD = [
    -(0.1 + 0.2),
    -0.3,
    -1 / 3,
    -0.3333333333333333,
    -123456789.12345679,
    -123456789.1234568,
    -1.0000000000000002,
    -1.0,
    -2.5e-7,
    -1e-13,
    -1e17,
    -1.0000000000000001e17,
    2.0,
    -7.3,
    -5.0,
]


def random_categories(seed: int, vids: list[int]) -> Categories:
    """Even videos in CATEGORY (t0 a half-life after T0, so trending is stored at half), odd in OTHER."""
    rng = random.Random(seed)
    cat: Scores = {w: {} for w in WINDOWS}
    other: Scores = {w: {} for w in WINDOWS}
    for vid in vids:
        for window in WINDOWS:
            if rng.random() < 0.7:
                score = rng.choice(AWKWARD) * rng.choice((1, 1, 3))
                if vid % 2:
                    other[window][member(vid)] = score
                else:
                    cat[window][member(vid)] = score / 2 if window == "trending" else score
    return {CATEGORY: (cat, T0 + HL), OTHER: (other, T0)}


def categories_write(categories: Categories) -> None:
    for cid, (state, t0) in categories.items():
        scope_write(cid, state, t0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_standing_matches_the_model_for_awkward_scores(frozen_now: None, seed: int) -> None:
    vids = list(range(1, 61))
    categories = random_categories(seed, vids)
    categories_write(categories)
    for vid in [*vids, 998, 999]:  # 998 and 999 are in no list
        own = OTHER if vid % 2 else CATEGORY
        assert reads.ranking_standings(video_id=vid, category_id=own) == model_standings(
            vid=vid, own=own, categories=categories
        ), vid


def test_scores_read_back_as_the_stored_doubles(frozen_now: None) -> None:
    for cid in (CATEGORY, OTHER):
        scope_write(
            cid,
            {
                w: {member(i + 1): s for i, s in enumerate(AWKWARD) if i % 2 == cid % 2}
                for w in WINDOWS
                if w != "trending"
            },
            T0,
        )
    for i, stored in enumerate(AWKWARD):
        for got in reads.ranking_standings(video_id=i + 1, category_id=CATEGORY if i % 2 == CATEGORY % 2 else OTHER):
            if got.scope == "global" and got.window != "trending":
                assert got.score == round(-stored, 6) + 0.0
                assert got.rank == 1 + sum(1 for s in AWKWARD if s < stored)


def test_a_scope_without_trend_state_reads_trending_undecayed(frozen_now: None) -> None:
    scope_write(OTHER, {"trending": {member(2): -8.0}}, T0)
    scope_write(CATEGORY, {"trending": {member(1): -8.0}}, None)
    got = {s.scope: s for s in reads.ranking_standings(video_id=1, category_id=CATEGORY) if s.window == "trending"}
    assert got["global"].score == 8.0 and got["category"].score == 8.0
    assert got["global"].rank == 1 and got["global"].total == 2  # the other shows 8 * 2^-2


def test_a_server_without_the_script_loads_it(frozen_now: None) -> None:
    scope_write(CATEGORY, {"day": {member(1): -3.0, member(2): -4.0}}, T0)
    before = reads.ranking_standings(video_id=1, category_id=CATEGORY)
    redis_client().script_flush()
    assert reads.ranking_standings(video_id=1, category_id=CATEGORY) == before
    assert before[2] == Standing("day", "global", 2, 3.0, 0.0, 2)


def _meta(title: str) -> VideoMeta:
    return VideoMeta(
        id=1, status="published", category_id=CATEGORY, title=title, category="music", category_name="Music",
        owner="alice", thumbnail_url="", duration_seconds=60, published_at="2026-01-05T10:00:00+00:00",
    )  # fmt: skip


def _top_video() -> dict[str, object]:
    page = reads.ranking_top(window="day", category_id=None, category_slug=None, limit=20, offset=0)
    return page.results[0].video


def test_a_page_hands_out_videos_of_its_own_and_reads_changed_metadata(frozen_now: None) -> None:
    client = redis_client()
    scope_write(CATEGORY, {"day": {member(1): -3.0}}, T0)
    client.hset(rk.meta_key(rk.GLOBAL), "1", _meta("Cat plays the piano").packed())
    first = _top_video()
    assert first["title"] == "Cat plays the piano" and first["published_at"] == "2026-01-05T10:00:00+00:00"
    first["title"] = "changed by the caller"
    assert _top_video()["title"] == "Cat plays the piano"
    client.hset(rk.meta_key(rk.GLOBAL), "1", _meta("Cat plays the drums").packed())
    assert _top_video()["title"] == "Cat plays the drums"


def _published_in(category_id: int, status: str = "published") -> VideoMeta:
    return VideoMeta(
        id=1, status=status, category_id=category_id, title="Cat", category=f"c{category_id}",
        category_name="C", owner="alice", thumbnail_url="", duration_seconds=60, published_at="",
    )  # fmt: skip


def test_a_videos_standings_follow_its_cached_category_whatever_the_last_read_saw(frozen_now: None) -> None:
    """video_standings reads the metadata and the standings together; a category it remembers from
    an earlier read is only a guess, and the metadata read with it decides which scope answers."""
    categories = random_categories(4, list(range(2, 61)))
    cat, other = categories[CATEGORY][0], categories[OTHER][0]
    for window in WINDOWS:  # video 1 in CATEGORY, with scores that tie some of OTHER's
        cat[window][member(1)] = next(iter(other[window].values()), -1.0)
    categories_write(categories)
    client = redis_client()
    reads._category_guess.clear()  # a process that has not read video 1 yet
    assert reads.video_standings(video_id=1) is None  # not in the metadata cache: the caller asks Postgres

    client.hset(rk.meta_key(rk.GLOBAL), "1", _published_in(CATEGORY).packed())
    in_first = model_standings(vid=1, own=CATEGORY, categories=categories)
    for _ in range(2):  # no guess yet, then the remembered category
        found = reads.video_standings(video_id=1)
        assert found is not None and (found.status, found.category_id) == ("published", CATEGORY)
        assert found.video["title"] == "Cat" and found.standings == in_first

    # Recategorised since: its scores moved to OTHER with it (a curation batch).
    for window in WINDOWS:
        score = cat[window].pop(member(1))
        other[window][member(1)] = score * 2 if window == "trending" else score  # OTHER's t0 is T0
        client.zrem(rk.ranking_key(window, CATEGORY), member(1))
    categories_write(categories)
    client.hset(rk.meta_key(rk.GLOBAL), "1", _published_in(OTHER).packed())
    in_other = model_standings(vid=1, own=OTHER, categories=categories)
    assert in_other != in_first
    for _ in range(2):
        found = reads.video_standings(video_id=1)
        assert found is not None and found.category_id == OTHER and found.standings == in_other

    client.hset(rk.meta_key(rk.GLOBAL), "1", _published_in(OTHER, status="hidden").packed())
    found = reads.video_standings(video_id=1)
    assert found is not None and (found.status, found.standings) == ("hidden", [])


@pytest.mark.parametrize("windows", [("day",), ("trending",), ("hour", "rising")])
def test_a_read_of_some_windows_answers_those_as_a_read_of_every_window_does(
    frozen_now: None, windows: tuple[str, ...]
) -> None:
    """A video page that shows one list asks for that window alone: the same standings, both
    scopes, in WINDOWS order; on one node the other windows' lists are not read at all."""
    vids = list(range(2, 61))
    categories = random_categories(5, vids)
    categories_write(categories)
    client = redis_client()
    for vid in vids[:20]:
        own = OTHER if vid % 2 else CATEGORY
        client.hset(rk.meta_key(rk.GLOBAL), str(vid), _published_in(own).packed())
    for vid in [*vids[:20], 999]:  # 999 is in no list
        own = OTHER if vid % 2 else CATEGORY
        want = [s for s in model_standings(vid=vid, own=own, categories=categories) if s.window in windows]
        assert [s.window for s in want] == [w for w in WINDOWS if w in windows for _ in ("global", "category")]
        assert reads.ranking_standings(video_id=vid, category_id=own, windows=windows) == want, vid
    for vid in vids[:20]:
        own = OTHER if vid % 2 else CATEGORY
        want = [s for s in model_standings(vid=vid, own=own, categories=categories) if s.window in windows]
        found = reads.video_standings(video_id=vid, windows=windows)
        assert found is not None and found.standings == want, vid
    if not is_cluster():
        # One call (VIDEO_STANDINGS) reads the lists of ``windows`` alone: the others may even be
        # keys of another type, which any read of them would fail on.
        for window in set(WINDOWS) - set(windows):
            for cid in (CATEGORY, OTHER):
                client.set(rk.ranking_key(window, cid), "not a sorted set")
        found = reads.video_standings(video_id=vids[0], windows=windows)
        assert found is not None and found.standings == [s for s in model_standings(
            vid=vids[0], own=CATEGORY, categories=categories) if s.window in windows]  # fmt: skip
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            reads.video_standings(video_id=vids[0])
