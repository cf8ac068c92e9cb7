"""What a ranking means: order, ties, paging, scopes, curation, trending decay and
window roll-over, checked through the public API against the real servers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from leaderboard.windows import WINDOWS, hour_floor, minute_floor
from scoring.ledger import window_rollover
from scoring.models import WindowState
from tests.conftest import wire
from tests.factories import CategoryFactory
from videos.services import video_set_status

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]

Apply = Callable[[list[str]], Any]
MakeVideo = Callable[..., Any]


def ranking(api: APIClient, **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/rankings/", params)
    assert response.status_code == 200, response.content
    return dict(response.json())


def ids_ranks(body: dict[str, Any]) -> list[tuple[int, int]]:
    return [(r["video"]["id"], r["rank"]) for r in body["results"]]


def scores_by_id(api: APIClient, **params: Any) -> dict[int, float]:
    return {r["video"]["id"]: r["score"] for r in ranking(api, limit=100, **params)["results"]}


def likes(video_id: int, n: int, **kwargs: Any) -> list[str]:
    return [wire(video_id, "like", **kwargs) for _ in range(n)]


def test_videos_are_ordered_by_score_best_first(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    low, high, mid = make_video(), make_video(), make_video()
    apply_events([*likes(low.id, 1), *likes(high.id, 5), *likes(mid.id, 3)])
    body = ranking(api)
    assert [(r["video"]["id"], r["score"]) for r in body["results"]] == [(high.id, 25.0), (mid.id, 15.0), (low.id, 5.0)]
    assert body["total"] == 3


def test_equal_scores_share_a_rank_and_list_lower_video_id_first(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    top, tied_low_id, tied_high_id, last = make_video(), make_video(), make_video(), make_video()
    # The higher id gets its events first, so insertion order cannot explain the tie order.
    apply_events([*likes(tied_high_id.id, 2), *likes(top.id, 3)])
    apply_events([*likes(tied_low_id.id, 2), *likes(last.id, 1)])
    body = ranking(api)
    assert ids_ranks(body) == [(top.id, 1), (tied_low_id.id, 2), (tied_high_id.id, 2), (last.id, 4)]


def test_tie_order_compares_video_ids_as_numbers(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    # 1000000 sorts before 999999 as text; the contract is numeric order.
    longer, shorter = make_video(id=1_000_000), make_video(id=999_999)
    apply_events([*likes(longer.id, 1), *likes(shorter.id, 1)])
    assert ids_ranks(ranking(api)) == [(999_999, 1), (1_000_000, 1)]


def test_a_page_starting_inside_a_tie_carries_the_tie_rank(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    a, b, c, d, e = (make_video() for _ in range(5))
    apply_events([*likes(a.id, 4), *likes(b.id, 2), *likes(c.id, 2), *likes(d.id, 2), *likes(e.id, 1)])
    body = ranking(api, limit=2, offset=2)
    assert ids_ranks(body) == [(c.id, 2), (d.id, 2)]
    assert (body["total"], body["limit"], body["offset"]) == (5, 2, 2)
    assert ids_ranks(ranking(api, limit=2, offset=4)) == [(e.id, 5)]


def test_a_page_past_the_end_is_empty_and_keeps_the_real_total(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    a, b = make_video(), make_video()
    apply_events([*likes(a.id, 1), *likes(b.id, 2)])
    body = ranking(api, limit=20, offset=2)
    assert body["results"] == []
    assert body["total"] == 2


def test_category_ranking_lists_only_that_categorys_videos(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    sport = CategoryFactory(slug="sport", name="Sport")
    m1, m2 = make_video(), make_video()
    s1 = make_video(category=sport)
    apply_events([*likes(m1.id, 1), *likes(m2.id, 3), *likes(s1.id, 9)])
    music = ranking(api, category="music")
    assert music["category"] == "music"
    assert ids_ranks(music) == [(m2.id, 1), (m1.id, 2)]
    assert music["total"] == 2
    assert {r["video"]["category"] for r in music["results"]} == {"music"}
    assert ids_ranks(ranking(api, category="sport")) == [(s1.id, 1)]
    assert ids_ranks(ranking(api)) == [(s1.id, 1), (m2.id, 2), (m1.id, 3)]


def test_hidden_video_leaves_every_ranking_and_republishing_restores_its_exact_score(
    api: APIClient, make_video: MakeVideo, apply_events: Apply, django_capture_on_commit_callbacks: Any
) -> None:
    star, other = make_video(), make_video()
    old = timezone.now() - timedelta(hours=30)
    apply_events([*likes(star.id, 4), wire(star.id, "share", occurred_at=old), *likes(other.id, 1)])
    before = {w: scores_by_id(api, window=w)[star.id] for w in WINDOWS}
    assert before["day"] == 20.0 and before["week"] == 70.0

    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=star.id, status="hidden")
    for window in WINDOWS:
        for params in ({}, {"category": "music"}):
            body = ranking(api, window=window, **params)
            assert star.id not in [r["video"]["id"] for r in body["results"]], (window, params)
            assert body["total"] == 1
    assert api.get(f"/api/v1/rankings/videos/{star.id}/").status_code == 404
    assert api.get(f"/api/v1/rankings/videos/{star.id}/around/").status_code == 404

    # Events that arrive while it is hidden still count once it is back.
    apply_events(likes(star.id, 1))
    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=star.id, status="published")
    after = {w: scores_by_id(api, window=w)[star.id] for w in WINDOWS}
    for window in ("hour", "day", "week", "all"):
        assert after[window] == before[window] + 5.0, window
    assert after["trending"] > before["trending"]
    assert ids_ranks(ranking(api, category="music"))[0] == (star.id, 1)


def test_removed_video_leaves_the_rankings(
    api: APIClient, make_video: MakeVideo, apply_events: Apply, django_capture_on_commit_callbacks: Any
) -> None:
    gone, kept = make_video(), make_video()
    apply_events([*likes(gone.id, 2), *likes(kept.id, 1)])
    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=gone.id, status="removed")
    assert ids_ranks(ranking(api)) == [(kept.id, 1)]


def test_trending_scores_older_events_lower_than_the_raw_window(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    old_video, new_video = make_video(), make_video()
    twelve_hours_ago = timezone.now() - timedelta(hours=12)
    apply_events([*likes(old_video.id, 2, occurred_at=twelve_hours_ago), *likes(new_video.id, 2)])
    raw = scores_by_id(api, window="day")
    trending = scores_by_id(api, window="trending")
    assert raw[old_video.id] == raw[new_video.id] == 10.0
    # Forward decay by the minute bucket's start: an event of age t weighs 2^(-t / half-life).
    age = (timezone.now() - minute_floor(twelve_hours_ago)).total_seconds()
    expected = 10.0 * 2 ** (-age / settings.RANKING_TRENDING_HALF_LIFE_S)
    assert trending[old_video.id] == pytest.approx(expected, rel=1e-3)
    assert trending[old_video.id] < raw[old_video.id] / 3
    assert trending[old_video.id] < trending[new_video.id] <= raw[new_video.id]
    assert ids_ranks(ranking(api, window="trending"))[0] == (new_video.id, 1)


def test_window_rollover_drops_buckets_from_sliding_windows_but_not_from_all(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    # A controlled clock: the windows are anchored two days back, at an exact hour.
    anchor = hour_floor(timezone.now()) - timedelta(hours=48)
    WindowState.objects.update_or_create(id=1, defaults={"anchor": anchor})
    video = make_video()
    apply_events(
        [
            *likes(video.id, 1, occurred_at=anchor),  # 5, in the anchor's minute
            wire(video.id, "comment", occurred_at=anchor - timedelta(minutes=50)),  # 10, 50 minutes before
            wire(video.id, "share", occurred_at=anchor - timedelta(minutes=65)),  # 50, 65 minutes before
        ]
    )

    def score(window: str) -> float | None:
        return scores_by_id(api, window=window).get(video.id)

    # hour = exactly the last 60 minutes: 65 minutes old is in day, not in hour; 50 minutes old is in both.
    assert score("hour") == 15.0
    assert score("day") == score("week") == score("all") == 65.0

    assert window_rollover(now=anchor + timedelta(minutes=9, seconds=30)) == 9
    assert score("hour") == 15.0  # the comment is 59 minutes old: still inside
    assert window_rollover(now=anchor + timedelta(minutes=10)) == 1
    assert score("hour") == 5.0  # 60 minutes old: it left, to the minute
    window_rollover(now=anchor + timedelta(minutes=60))
    assert score("hour") is None
    assert score("day") == 65.0

    # day = the 24 hour buckets H-23 .. H: a bucket stays in it for exactly 24 hours.
    window_rollover(now=anchor + timedelta(hours=21, minutes=59))
    assert score("day") == 65.0  # the share's bucket (anchor - 2 h) is the oldest of the 24
    window_rollover(now=anchor + timedelta(hours=22))
    assert score("day") == 15.0
    window_rollover(now=anchor + timedelta(hours=23))
    assert score("day") == 5.0
    assert score("week") == score("all") == 65.0

    # The breakdown reads Postgres with the same anchor and agrees with Redis.
    body = api.get(f"/api/v1/rankings/videos/{video.id}/").json()
    assert sum(row["score"] for row in body["breakdown"]["day"]) == pytest.approx(5.0)
    assert sum(row["score"] for row in body["breakdown"]["all"]) == pytest.approx(65.0)
    assert body["standings"]["hour"]["global"]["rank"] is None

    window_rollover(now=anchor + timedelta(hours=24))
    assert score("day") is None  # the anchor bucket left after 24 hours
    assert score("week") == score("all") == 65.0


def test_a_burst_on_a_quiet_video_tops_rising_long_before_all(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    anchor = hour_floor(timezone.now()) - timedelta(hours=48)
    WindowState.objects.update_or_create(id=1, defaults={"anchor": anchor})
    star, quiet, tiny = make_video(), make_video(), make_video()
    apply_events(
        [
            *likes(star.id, 200, occurred_at=anchor - timedelta(days=3)),  # 1000 over the week: big and steady
            *likes(star.id, 10, occurred_at=anchor - timedelta(minutes=5)),  # 50 this hour: its usual pace
            *likes(quiet.id, 30, occurred_at=anchor - timedelta(minutes=2)),  # 150 this hour, nothing before
            *[wire(tiny.id, "view", occurred_at=anchor) for _ in range(3)],  # three views: the prior keeps it down
        ]
    )
    rising = list(scores_by_id(api, window="rising"))
    assert rising[0] == quiet.id and rising[-1] == tiny.id
    assert next(iter(scores_by_id(api, window="all"))) == star.id

    body = api.get(f"/api/v1/rankings/videos/{quiet.id}/").json()
    expected = 150.0 / (150.0 / 168 + 50.0)
    assert body["rising"] == {
        "last_hour_score": 150.0,
        "week_score": 150.0,
        "week_average_per_hour": pytest.approx(150.0 / 168, abs=1e-6),
        "prior_per_hour": 50.0,
        "rising_score": pytest.approx(expected, abs=1e-6),
    }
    assert body["standings"]["rising"]["global"]["score"] == pytest.approx(expected, abs=1e-6)

    # The burst ages out of the hour window to the minute, and the video leaves rising with it.
    window_rollover(now=anchor + timedelta(minutes=57))
    assert quiet.id in scores_by_id(api, window="rising")  # two minutes old at anchor - 2 + 59
    window_rollover(now=anchor + timedelta(minutes=58))
    assert quiet.id not in scores_by_id(api, window="rising")
