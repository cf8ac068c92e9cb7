"""The apply script against a model of its contract, on the real server.

Per delta, in ARGV order, every window whose mask bit is set moves by the delta (trending by
the delta forward-decayed to its minute); a score at |s| <= EPS leaves that window; and a delta
that moves hour or week sets the member's rising score from its hour and week scores, or
removes it from rising when hour is ~0. Scores are stored negated. The model does the same
float operations in the same order, so every score must match exactly, not approximately.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pytest

from core.redis import redis_client
from leaderboard import keys as rk
from leaderboard import store
from leaderboard.windows import EPS, WINDOW_BITS, WINDOWS, rising_score

pytestmark = pytest.mark.cluster

T0 = 1_700_000_000 - 1_700_000_000 % 3600
HL = 6 * 3600
HOUR, DAY, WEEK, ALL, TRENDING = (WINDOW_BITS[w] for w in ("hour", "day", "week", "all", "trending"))
EVERY = HOUR | DAY | WEEK | ALL | TRENDING
# Minutes whole half-lives from t0: their decay factors are powers of two, exact in any libm.
MINUTES = [T0 + k * HL for k in (-2, -1, 0, 1, 2)]
SCOPES = ("c7", "c8")

Scores = dict[str, dict[str, float]]  # window -> member -> stored (negated) score


def member(vid: int) -> str:
    return rk.member(vid)


def model_apply(state: Scores, deltas: Iterable[Sequence[float | int]]) -> None:
    for vid, minute, mask, score in deltas:
        m = member(int(vid))
        moved = False
        for window in WINDOWS:
            if window == "rising" or not int(mask) & WINDOW_BITS[window]:
                continue
            delta = float(score) * 2 ** ((minute - T0) / HL) if window == "trending" else float(score)
            current = state[window].get(m)
            new = -delta if current is None else current - delta
            if abs(new) <= EPS[window]:
                state[window].pop(m, None)
            else:
                state[window][m] = new
            moved = moved or window in ("hour", "week")
        if moved:
            hour = -state["hour"].get(m, 0.0)
            if abs(hour) <= EPS["hour"]:
                state["rising"].pop(m, None)
            else:
                state["rising"][m] = -rising_score(hour, -state["week"].get(m, 0.0))


def scope_read(scope: str) -> Scores:
    client = redis_client()
    return {
        w: {m.decode(): s for m, s in client.zrange(rk.scope_ranking_key(scope, w), 0, -1, withscores=True)}
        for w in WINDOWS
    }


def scope_preset(scope: str, state: Scores) -> None:
    client = redis_client()
    for window, members in state.items():
        if members:
            client.zadd(rk.scope_ranking_key(scope, window), members)


def scopes_init() -> None:
    for scope in SCOPES:
        assert store.scope_init(scope=scope, generation=1, t0=T0, half_life_s=HL)


def preset() -> Scores:
    """Scores already in the sets before the batch (negated, as stored)."""
    return {
        "hour": {member(1): -2.0, member(3): -4.0, member(10): -1.0},
        "day": {member(1): -2.0},
        "week": {member(1): -2.0, member(3): -8.0, member(10): -50.0},
        "all": {member(1): -2.0, member(7): -1.0},
        # A trending score a rebase shrank below EPS is still a member until a delta touches it.
        "trending": {member(1): -2.0, member(9): -1e-13},
        "rising": {member(2): -1.0, member(10): -0.5},
    }


# Each case is one rule of the contract; the comment says what the model must show.
CASES: list[list[float | int]] = [
    # repeated member, partial masks: summed in order, per window
    [1, MINUTES[2], EVERY, 1.0],
    [1, MINUTES[3], EVERY, 0.5],
    [1, MINUTES[4], ALL | TRENDING, 3.0],
    # 0.1 + 0.2 - 0.3 leaves a residue below EPS: the member leaves every window and rising
    [2, MINUTES[2], EVERY, 0.1],
    [2, MINUTES[2], EVERY, 0.2],
    [2, MINUTES[2], EVERY, -0.3],
    # week alone moves: rising uses the stored hour score
    [3, MINUTES[1], WEEK, 2.0],
    # hour alone, no week score yet
    [4, MINUTES[0], HOUR, 5.0],
    # trending alone, at two minutes
    [5, MINUTES[3], TRENDING, 1.0],
    [5, MINUTES[4], TRENDING, 1.0],
    # a negative delta on a window nothing else touches: no rising change
    [6, MINUTES[2], DAY, -2.0],
    # an exact cancel of a stored score
    [7, MINUTES[2], ALL, -1.0],
    # no window at all
    [8, MINUTES[2], 0, 4.0],
    # a zero delta removes a stored score that is already below EPS
    [9, MINUTES[2], TRENDING, 0.0],
    # hour back to 0 while week stays: the member leaves rising
    [10, MINUTES[2], HOUR, -1.0],
]


def random_deltas(seed: int, count: int) -> list[list[float | int]]:
    rng = random.Random(seed)
    masks = [EVERY, EVERY, HOUR | DAY | WEEK, WEEK | ALL | TRENDING, ALL | TRENDING, HOUR, WEEK, TRENDING]
    scores = [1.0, -1.0, 0.5, -0.5, 3.0, 0.1, 0.2, -0.3, 1e-10, -2.5]
    return [
        [rng.randint(1, 40), rng.choice(MINUTES), rng.choice(masks), rng.choice(scores) * rng.choice((1, 1, 1, 7.3))]
        for _ in range(count)
    ]


@pytest.mark.parametrize("chunk", [store.APPLY_CHUNK, 7])
def test_every_window_holds_the_ordered_sums_of_the_deltas(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(store, "APPLY_CHUNK", chunk)
    scopes_init()
    expected = preset()
    for scope in SCOPES:
        scope_preset(scope, expected)
    for index, deltas in enumerate([CASES, random_deltas(1, 400), random_deltas(2, 60)]):
        assert store.deltas_apply(batch_id=f"b{index}", deltas={s: deltas for s in SCOPES}) == len(deltas) * 2
        model_apply(expected, deltas)
        for scope in SCOPES:
            assert scope_read(scope) == expected
        if deltas is CASES:
            # The model itself follows the rules the cases are about.
            assert member(2) not in {m for w in WINDOWS for m in expected[w]}
            assert member(7) not in expected["all"] and member(9) not in expected["trending"]
            assert member(10) not in expected["rising"] and member(10) in expected["week"]
            assert member(8) not in expected["all"] and member(6) not in expected["rising"]


def test_a_batch_sent_again_changes_nothing() -> None:
    scopes_init()
    deltas = {s: CASES for s in SCOPES}
    assert store.deltas_apply(batch_id="once", deltas=deltas) == len(CASES) * 2
    before = {s: scope_read(s) for s in SCOPES}
    assert store.deltas_apply(batch_id="once", deltas=deltas) == 0
    assert {s: scope_read(s) for s in SCOPES} == before


def test_deltas_for_the_global_scope_change_nothing() -> None:
    """Batches stored before the global lists became the categories' union carry global deltas:
    their categories' deltas count, the global ones are no list to change."""
    for scope in (rk.GLOBAL, "c7"):
        assert store.scope_init(scope=scope, generation=1, t0=T0, half_life_s=HL)
    assert store.deltas_apply(batch_id="old", deltas={rk.GLOBAL: CASES, "c7": CASES}) == len(CASES)
    assert scope_read(rk.GLOBAL) == {w: {} for w in WINDOWS}
    expected: Scores = {w: {} for w in WINDOWS}
    model_apply(expected, CASES)
    assert scope_read("c7") == expected
