"""Drift between the rankings in Redis and the counters in Postgres (``reindex --check``).

Read-only: it recomputes what every ranking should hold with the rebuild's own
query and rules (scoring.rebuild.SCORES_SQL, EPS, the anchored windows) and compares that with
what Redis holds, key by key. Trending scores are recomputed against the
forward-decay reference time stored in Redis (``rk:trend``), so they compare
like for like with the stored ones.

On a live system a batch may be counted in Postgres and not yet applied to
Redis. Videos of such batches are skipped, and every difference found in the
first pass is read again from both sides before it is reported, so what is
left is drift that persisted, not an update caught halfway.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from core.redis import redis_client
from leaderboard import keys as rk
from leaderboard import store
from leaderboard.windows import EPS, WINDOWS
from scoring.models import Batch
from scoring.rebuild import all_scopes, scores_from_counters, scores_params
from scoring.selectors import window_anchor
from videos.selectors import category_rows, video_states

REL_TOL = 1e-6
SCAN_COUNT = 5000
META = "meta"

Values = tuple[float | None, ...]  # one per window, in WINDOWS order


@dataclass
class KeyDrift:
    key: str
    expected: int = 0
    actual: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.missing or self.extra or self.different)


@dataclass
class DriftReport:
    built: bool
    generation: str | None = None
    videos: int = 0
    keys: list[KeyDrift] = field(default_factory=list)
    in_flight_batches: int = 0
    skipped_videos: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def drifted(self) -> bool:
        return not self.built or any(k.drifted for k in self.keys)


@dataclass
class _State:
    """One consistent read of Postgres."""

    videos: dict[int, tuple[str, int]]  # id -> (status, category id)
    scores: dict[int, Values]
    categories: list[int]
    in_flight: set[int]
    in_flight_batches: int
    # Per scope (category id, None for global), what its stored trending scores are scaled by
    # relative to the global scope's reference time (scopes rebase independently).
    trending_factors: dict[int | None, float] = field(default_factory=dict)

    def scaled(self, window: str, category_id: int | None, value: float | None) -> float | None:
        if value is None or window != "trending":
            return value
        return value * self.trending_factors.get(category_id, 1.0)


@dataclass(frozen=True)
class _Probe:
    """Where a value lives in Redis: a category's ranking (window, category) or the metadata."""

    kind: str  # "zset" or META
    window: str = ""
    category_id: int | None = None

    @property
    def name(self) -> str:
        if self.kind == "zset":
            assert self.category_id is not None, "a global list is no key but the categories' union"
            return rk.ranking_key(self.window, self.category_id)
        return rk.meta_key(rk.GLOBAL)


def _significant(window: str, value: float | None) -> float | None:
    return value if value is not None and abs(value) > EPS[window] else None


def _same(window: str, a: float, b: float) -> bool:
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), EPS[window])


def _state_read(*, t0: float, hl: float, video_ids: Iterable[int] | None = None) -> _State:
    ids = sorted(video_ids) if video_ids is not None else None
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cur:
            if outermost:
                # One snapshot for every query below, as the rebuild reads.
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        anchor = window_anchor()
        categories = [row[0] for row in category_rows()]
        # Counted in Postgres, not yet in Redis: their videos are legitimately behind.
        batches = list(
            Batch.objects.filter(processed_at__isnull=False, applied_at__isnull=True, deltas__isnull=False).values_list(
                "deltas", flat=True
            )
        )
        in_flight = {int(d[0]) for deltas in batches for scoped in (deltas or {}).values() for d in scoped}
        videos = video_states(video_ids=ids)
        params = scores_params(anchor=anchor, t0=int(t0), hl=int(hl), video_ids=ids)
        scores: dict[int, Values] = {}
        for rows in scores_from_counters(params=params):
            for vid, *values in rows:
                scores[int(vid)] = tuple(
                    _significant(w, None if v is None else float(v)) for w, v in zip(WINDOWS, values, strict=True)
                )
    return _State(videos, scores, categories, in_flight, len(batches))


def _expected(state: _State, probe: _Probe, vid: int) -> float | str | None:
    meta = state.videos.get(vid)
    if probe.kind == META:
        return None if meta is None else f"{meta[0]}/{meta[1]}"
    values = state.scores.get(vid)
    if meta is None or values is None:
        return None
    value = values[WINDOWS.index(probe.window)]
    published = meta[0] == "published"
    if not published or (probe.category_id is not None and probe.category_id != meta[1]):
        return None
    return state.scaled(probe.window, probe.category_id, value)


def _differs(probe: _Probe, expected: float | str | None, actual: float | str | None) -> str | None:
    """None when equal, else "missing", "extra" or "different"."""
    if expected is None and actual is None:
        return None
    if expected is None:
        return "extra"
    if actual is None:
        return "missing"
    if isinstance(expected, str) or isinstance(actual, str):
        return None if expected == actual else "different"
    return None if _same(probe.window, expected, actual) else "different"


def _example(kind: str, vid: int, expected: float | str | None, actual: float | str | None) -> str:
    if kind == "missing":
        return f"video {vid} missing (expected {expected})"
    if kind == "extra":
        return f"video {vid} not expected (redis has {actual})"
    return f"video {vid}: redis {actual} != expected {expected}"


Suspects = dict[_Probe, set[int]]


def _zsets_compare(state: _State, drift: dict[_Probe, KeyDrift], suspects: Suspects) -> None:
    client = redis_client()
    by_scope: dict[int | None, list[int]] = defaultdict(list)
    for vid, (status, cid) in state.videos.items():
        if status == "published" and vid in state.scores:
            by_scope[cid].append(vid)
    for index, window in enumerate(WINDOWS):
        # The categories' lists only: the global ones are their union (leaderboard.union), read
        # from these same keys.
        for scope in state.categories:
            probe = _Probe("zset", window, scope)
            expected = {
                vid: state.scaled(window, scope, v)
                for vid in by_scope.get(scope, [])
                if (v := state.scores[vid][index]) is not None
            }
            seen: set[int] = set()
            for member, stored in client.zscan_iter(probe.name, count=SCAN_COUNT):
                vid = rk.video_id_of(member)
                if vid in seen:  # ZSCAN may repeat a member
                    continue
                seen.add(vid)
                if _differs(probe, expected.get(vid), -stored):
                    suspects[probe].add(vid)
            drift[probe] = KeyDrift(key=probe.name, expected=len(expected), actual=len(seen))
            suspects[probe].update(vid for vid in expected if vid not in seen)


def _stray_zsets(drift: dict[_Probe, KeyDrift], suspects: Suspects) -> None:
    """Sorted sets of categories that no longer exist: all their members are extra."""
    client = redis_client()
    known = {p.name for p in drift}
    for raw_key in client.scan_iter(match=f"{rk.PREFIX}{{c*}}:z:*", count=SCAN_COUNT):
        name = raw_key.decode()
        if name in known or ":tmp:" in name:
            continue
        scope, _, window = name[len(rk.PREFIX) + 1 :].partition("}:z:")
        if window not in WINDOWS or not scope[1:].isdigit():
            continue
        probe = _Probe("zset", window, rk.category_of_scope(scope))
        members = {rk.video_id_of(m) for m, _ in client.zscan_iter(name, count=SCAN_COUNT)}
        drift[probe] = KeyDrift(key=name, actual=len(members))
        suspects[probe].update(members)


def _meta_compare(state: _State, drift: dict[_Probe, KeyDrift], suspects: Suspects) -> None:
    """The metadata cache: a video's status and category decide where its scores go."""
    client = redis_client()
    probe = _Probe(META)
    entry = drift[probe] = KeyDrift(key=probe.name, expected=len(state.videos))
    vids = sorted(state.videos)
    for start in range(0, len(vids), 10_000):
        chunk = vids[start : start + 10_000]
        for vid, raw in zip(chunk, client.hmget(rk.meta_key(rk.GLOBAL), [str(v) for v in chunk]), strict=True):
            actual = _meta_actual(raw)
            entry.actual += actual is not None
            if _differs(probe, _expected(state, probe, vid), actual):
                suspects[probe].add(vid)


def _meta_actual(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return f"{data.get('status')}/{data.get('category_id')}"


def _pass_one(state: _State) -> tuple[dict[_Probe, KeyDrift], Suspects]:
    """Full comparison: per key, its sizes and the videos that differ."""
    drift: dict[_Probe, KeyDrift] = {}
    suspects: Suspects = defaultdict(set)
    _zsets_compare(state, drift, suspects)
    _stray_zsets(drift, suspects)
    _meta_compare(state, drift, suspects)
    return drift, suspects


def _actuals(pairs: list[tuple[_Probe, int]]) -> list[float | str | None]:
    """What Redis holds now for each (probe, video), read in pipelined chunks."""
    client = redis_client()
    out: list[float | str | None] = []
    for start in range(0, len(pairs), 10_000):
        chunk = pairs[start : start + 10_000]
        pipe = client.pipeline(transaction=False)
        for probe, vid in chunk:
            if probe.kind == "zset":
                pipe.zscore(probe.name, rk.member(vid))
            else:
                pipe.hget(rk.meta_key(rk.GLOBAL), str(vid))
        for (probe, _), raw in zip(chunk, pipe.execute(), strict=True):
            if probe.kind == "zset":
                out.append(None if raw is None else -raw)
            else:
                out.append(_meta_actual(raw))
    return out


def _trending_factors(t0: float, hl: float, categories: list[int]) -> dict[int | None, float]:
    """2^((t0_global - t0_scope) / half-life) per category scope: its scale against the global one."""
    pipe = redis_client().pipeline(transaction=False)
    for cid in categories:
        pipe.hget(rk.trend_key(rk.scope_for(cid)), "t0")
    return {
        cid: 2.0 ** ((t0 - float(raw)) / hl) if raw is not None else 1.0
        for cid, raw in zip(categories, pipe.execute(), strict=True)
    }


def rankings_drift_check(*, examples: int = 5) -> DriftReport:
    """Compare every ranking and metadata entry in Redis with Postgres; change nothing."""
    started = time.monotonic()
    client = redis_client()
    missing = store.scopes_not_built(scopes=all_scopes())
    generation = client.get(rk.ready_key(rk.GLOBAL))
    t0, hl = client.hmget(rk.trend_key(rk.GLOBAL), "t0", "hl")
    if missing or generation is None or t0 is None or hl is None:
        return DriftReport(built=False, notes=[f"rankings are not built in scope(s) {', '.join(missing or ['g'])}"])
    report = DriftReport(built=True, generation=generation.decode())
    state = _state_read(t0=float(t0), hl=float(hl))
    state.trending_factors = _trending_factors(float(t0), float(hl), state.categories)
    report.videos = len(state.videos)
    report.in_flight_batches = state.in_flight_batches
    drift, suspects = _pass_one(state)

    # Second look at every suspect, from fresh reads of both sides.
    flagged = {vid for vids in suspects.values() for vid in vids} - state.in_flight
    t0, hl = client.hmget(rk.trend_key(rk.GLOBAL), "t0", "hl")
    fresh = _state_read(t0=float(t0 or 0), hl=float(hl or 1), video_ids=flagged) if flagged else state
    fresh.trending_factors = _trending_factors(float(t0 or 0), float(hl or 1), state.categories)
    skipped = state.in_flight | fresh.in_flight
    pairs = [(probe, vid) for probe, vids in suspects.items() for vid in sorted(vids) if vid not in skipped]
    for (probe, vid), actual in zip(pairs, _actuals(pairs), strict=True):
        expected = _expected(fresh, probe, vid)
        kind = _differs(probe, expected, actual)
        if kind is None:
            continue
        entry = drift[probe]
        setattr(entry, kind, getattr(entry, kind) + 1)
        if len(entry.examples) < examples:
            entry.examples.append(_example(kind, vid, expected, actual))
    report.skipped_videos = len(skipped)
    report.keys = sorted(drift.values(), key=lambda k: k.key)
    if hl is not None and int(float(hl)) != settings.RANKING_TRENDING_HALF_LIFE_S:
        report.notes.append("trending half-life in Redis differs from settings: the next rebuild applies it")
    report.seconds = time.monotonic() - started
    return report
