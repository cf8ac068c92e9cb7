"""`manage.py reindex`: atomic swap under readers, drift check, weight changes."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import defaultdict

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.progress import StageBars
from core.redis import redis_client
from demo.plan import SeedPlan
from demo.seeding import data_seed
from events.models import EventType
from leaderboard import keys as rk
from leaderboard import union
from leaderboard.windows import window_start
from rankings.selectors import ranking_top
from scoring.management.commands import reindex as reindex_command
from scoring.models import WindowState
from scoring.selectors import counts_by_hour
from videos.models import Video

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]


@pytest.fixture
def seeded(event_types: None) -> None:
    data_seed(plan=SeedPlan(videos=120, users=30, events=6000, seed=11, reset=True))


def redis_dump() -> dict[bytes, bytes]:
    client = redis_client()
    return {key: client.dump(key) for key in client.scan_iter(match=f"{rk.PREFIX}*")}


def check() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("reindex", "--check", stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_reindex_prints_a_summary(seeded: None) -> None:
    out = io.StringIO()
    call_command("reindex", "--no-progress", stdout=out)
    text = out.getvalue()
    assert "120 videos" in text and "ranked per window: hour" in text and "replayed 0 late batches" in text
    assert check()[0] == 0


def test_readers_never_see_an_empty_or_partial_ranking_during_reindex(
    seeded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read() -> tuple[int, list[int], list[float]]:
        page = ranking_top(window="day", limit=100)
        return page.total, [e.video["id"] for e in page.results], [e.score for e in page.results]

    before = read()
    assert before[0] > 50
    seen: list[tuple[int, list[int], list[float]]] = []
    stop = threading.Event()
    mid_build: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(read())

    class ReadWhileBuilding(StageBars):
        """At every progress report of the rebuild, let the reader read a few times first."""

        def __call__(self, stage: str, done: int, total: int | None) -> None:
            target = len(seen) + 3
            while len(seen) < target and thread.is_alive():
                time.sleep(0.001)
            mid_build.append(len(seen))
            super().__call__(stage, done, total)

    monkeypatch.setattr(reindex_command, "StageBars", ReadWhileBuilding)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(3):
            call_command("reindex", "--no-progress", "--chunk=10", stdout=io.StringIO())
    finally:
        stop.set()
        thread.join()
    assert len(mid_build) > 3 * 10  # reads happened between the build's steps, before and after the swap
    assert all(s == before for s in seen)


def test_check_reports_drift_exits_1_and_changes_nothing(seeded: None) -> None:
    assert check()[0] == 0
    client = redis_client()
    bumped = union.union_rows(window="day")[3][0]
    day = rk.ranking_key("day", Video.objects.get(id=rk.video_id_of(bumped)).category_id)
    client.zincrby(day, -7.5, bumped)  # scores are stored negated: +7.5 points
    video = Video.objects.get(id=rk.video_id_of(union.union_rows(window="week")[0][0]))
    week_cat = rk.ranking_key("week", video.category_id)
    client.zrem(week_cat, rk.member(video.id))
    before = redis_dump()

    code, out = check()

    assert code == 1
    assert f"DRIFT  {day}:" in out and "different 1" in out
    assert f"video {rk.video_id_of(bumped)}: redis" in out
    assert f"DRIFT  {week_cat}:" in out and "missing 1" in out and f"video {video.id} missing" in out
    assert out.count("DRIFT") == 2
    assert redis_dump() == before  # read-only

    call_command("reindex", "--no-progress", stdout=io.StringIO())
    assert check()[0] == 0


def test_check_sees_stale_metadata_and_unbuilt_rankings(seeded: None) -> None:
    client = redis_client()
    video = Video.objects.filter(status="published").first()
    assert video is not None
    packed = json.loads(client.hget(rk.meta_key(rk.GLOBAL), str(video.id)))
    client.hset(rk.meta_key(rk.GLOBAL), str(video.id), json.dumps({**packed, "status": "hidden"}))
    code, out = check()
    assert code == 1 and f"video {video.id}: redis hidden/" in out
    client.delete(rk.ready_key(rk.GLOBAL))
    assert check()[0] == 1


def expected_scores(window: str) -> dict[int, float]:
    """Sum of weight * units by hand, published videos only, from the counters."""
    current = WindowState.objects.get(id=1).anchor
    start = window_start(window, current)
    weights = dict(EventType.objects.values_list("id", "weight"))
    published = set(Video.objects.filter(status="published").values_list("id", flat=True))
    totals: dict[int, float] = defaultdict(float)
    for (video_id, type_id, hour), (_, units) in counts_by_hour().items():
        if video_id in published and (start is None or hour >= start):
            totals[video_id] += weights[type_id] * units
    return {vid: s for vid, s in totals.items() if abs(s) > 1e-9}


def redis_scores(window: str) -> dict[int, float]:
    return {rk.video_id_of(m): -s for m, s in union.union_rows(window=window)}


def test_weight_change_is_applied_by_reindex(seeded: None) -> None:
    EventType.objects.filter(name="like").update(weight=7.25)
    EventType.objects.filter(name="view").update(weight=-0.5)  # a negative weight, as a dislike would have
    # Redis still holds the old weights: that is drift until a rebuild.
    assert check()[0] == 1

    call_command("reindex", "--no-progress", stdout=io.StringIO())

    for window in ("day", "all"):
        expected, actual = expected_scores(window), redis_scores(window)
        assert expected.keys() == actual.keys()
        assert all(actual[v] == pytest.approx(expected[v], rel=1e-9, abs=1e-9) for v in expected)
    assert check()[0] == 0
