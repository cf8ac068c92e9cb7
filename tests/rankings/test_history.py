"""Rank history through the HTTP API, against the real servers: a list as it stood at a past
time (``as_of``) and a video's rank over time (``/rankings/videos/<id>/history/``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.redis import redis_client
from leaderboard import keys as rk
from leaderboard.windows import WINDOWS
from rankings.models import RankingSnapshot, RankingSnapshotEntry
from rankings.services import snapshot_take
from tests.conftest import wire
from tests.factories import CategoryFactory
from tests.http import error_of, get_ok
from videos.services import video_set_status

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]

Apply = Callable[[list[str]], Any]
MakeVideo = Callable[..., Any]


def likes(video_id: int, n: int) -> list[str]:
    return [wire(video_id, "like") for _ in range(n)]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ids_ranks(body: dict[str, Any]) -> list[tuple[int, int]]:
    return [(r["video"]["id"], r["rank"]) for r in body["results"]]


# --- GET /rankings/?as_of= -----------------------------------------------------------------


def test_as_of_answers_the_list_as_it_stood_with_the_snapshot_time(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    a, b, c = make_video(title="A"), make_video(title="B"), make_video(title="C")
    now = timezone.now()
    apply_events([*likes(a.id, 3), *likes(b.id, 2)])  # a 15, b 10
    first = now - timedelta(minutes=20)
    snapshot_take(now=first)
    apply_events([*likes(b.id, 4), *likes(c.id, 1)])  # b 30, a 15, c 5
    second = now - timedelta(minutes=10)
    snapshot_take(now=second)
    apply_events(likes(c.id, 10))  # live: c 55

    live = get_ok(api, "/api/v1/rankings/")
    assert "taken_at" not in live
    assert ids_ranks(live) == [(c.id, 1), (b.id, 2), (a.id, 3)]

    body = get_ok(api, "/api/v1/rankings/", as_of=iso(first + timedelta(minutes=5)))
    assert set(body) == {"window", "category", "generated_at", "taken_at", "total", "limit", "offset", "results"}
    assert body["taken_at"] == iso(first)
    assert (body["window"], body["category"], body["total"]) == ("day", None, 2)
    assert [(r["video"]["id"], r["rank"], r["score"], r["previous_rank"]) for r in body["results"]] == [
        (a.id, 1, 15.0, None),  # the oldest snapshot has none before it
        (b.id, 2, 10.0, None),
    ]
    assert body["results"][0]["video"] == live["results"][2]["video"]  # today's details, from the cache

    # Exactly at a snapshot's time answers that snapshot; previous_rank is the rank in the one before.
    body = get_ok(api, "/api/v1/rankings/", as_of=iso(second), category="music")
    assert body["taken_at"] == iso(second) and body["category"] == "music"
    assert [(r["video"]["id"], r["rank"], r["previous_rank"]) for r in body["results"]] == [
        (b.id, 1, 2),
        (a.id, 2, 1),
        (c.id, 3, None),
    ]
    # Any time after the latest snapshot (up to now) answers the latest one.
    assert get_ok(api, "/api/v1/rankings/", as_of=iso(timezone.now()))["taken_at"] == iso(second)


def test_as_of_without_offset_is_utc_and_other_offsets_are_converted(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    taken = (timezone.now() - timedelta(hours=2)).replace(microsecond=0)
    snapshot_take(now=taken)
    naive = taken.replace(tzinfo=None).isoformat()
    assert get_ok(api, "/api/v1/rankings/", as_of=naive)["taken_at"] == iso(taken)
    plus_two = (taken + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    assert get_ok(api, "/api/v1/rankings/", as_of=plus_two)["taken_at"] == iso(taken)


def test_as_of_pages_within_the_snapshot_depth(
    api: APIClient, make_video: MakeVideo, apply_events: Apply, settings: Any
) -> None:
    settings.RANKING_SNAPSHOT_DEPTH = 4
    videos = [make_video() for _ in range(6)]
    apply_events([raw for i, v in enumerate(videos) for raw in likes(v.id, 6 - i)])
    snapshot_take()
    as_of = iso(timezone.now())
    assert get_ok(api, "/api/v1/rankings/")["total"] == 6
    first = get_ok(api, "/api/v1/rankings/", as_of=as_of, limit=3)
    assert first["total"] == 4 and ids_ranks(first) == [(v.id, i + 1) for i, v in enumerate(videos[:3])]
    second = get_ok(api, "/api/v1/rankings/", as_of=as_of, limit=3, offset=3)
    assert ids_ranks(second) == [(videos[3].id, 4)]
    past_end = get_ok(api, "/api/v1/rankings/", as_of=as_of, offset=4)
    assert past_end["results"] == [] and past_end["total"] == 4


def test_as_of_leaves_out_videos_hidden_since_and_reads_details_from_the_catalogue(
    api: APIClient, make_video: MakeVideo, apply_events: Apply, django_capture_on_commit_callbacks: Any
) -> None:
    a, b, c = make_video(), make_video(), make_video(title="Not cached")
    apply_events([*likes(a.id, 3), *likes(b.id, 2), *likes(c.id, 1)])
    snapshot_take()
    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=a.id, status="hidden")
    redis_client().hdel(rk.meta_key(rk.GLOBAL), str(c.id))  # e.g. the cache is being rebuilt
    body = get_ok(api, "/api/v1/rankings/", as_of=iso(timezone.now()))
    # The others keep the ranks they had; the hidden video is not shown and not counted.
    assert ids_ranks(body) == [(b.id, 2), (c.id, 3)]
    assert body["total"] == 2
    assert body["results"][1]["video"]["title"] == "Not cached"


def test_malformed_as_of_is_a_400_naming_the_field(api: APIClient, rankings_ready: None) -> None:
    for value in ("yesterday", "2026-13-01T00:00:00Z", "", "0001-01-01T00:00:00+05:00"):
        error = error_of(api.get("/api/v1/rankings/", {"as_of": value}), 400)
        assert error["code"] == "invalid"
        assert set(error["details"]) == {"as_of"}, value


def test_as_of_outside_the_kept_snapshots_is_a_404_that_states_the_retention(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    never = error_of(api.get("/api/v1/rankings/", {"as_of": iso(timezone.now())}), 404)
    assert "none has been taken yet" in never["message"]
    oldest = timezone.now() - timedelta(days=2)
    snapshot_take(now=oldest)

    before = timezone.now() - timedelta(days=3)
    error = error_of(api.get("/api/v1/rankings/", {"as_of": iso(before)}), 404)
    assert error["code"] == "not_found"
    assert "kept 7 days" in error["message"] and "every 300 s" in error["message"]
    assert error["details"] == {
        "as_of": iso(before),
        "oldest_snapshot": iso(oldest),
        "snapshot_interval_s": 300,
        "retention_days": 7,
    }
    future = timezone.now() + timedelta(minutes=1)
    error = error_of(api.get("/api/v1/rankings/", {"as_of": iso(future)}), 404)
    assert "in the future" in error["message"] and "kept 7 days" in error["message"]
    # A list (here a category) with no snapshot before as_of, though others have one.
    CategoryFactory(slug="sport", name="Sport")
    error_of(api.get("/api/v1/rankings/", {"as_of": iso(timezone.now()), "category": "sport"}), 404)
    assert error_of(api.get("/api/v1/rankings/", {"as_of": iso(oldest), "category": "jazz"}), 404)["details"] == {
        "category": "jazz"
    }


def test_trending_snapshots_keep_the_score_shown_at_their_time(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    video = make_video()
    apply_events([wire(video.id, "like", occurred_at=timezone.now() - timedelta(hours=6))])
    live = get_ok(api, "/api/v1/rankings/", window="trending")["results"][0]["score"]
    snapshot_take()
    stored = get_ok(api, "/api/v1/rankings/", window="trending", as_of=iso(timezone.now()))["results"][0]["score"]
    assert stored == pytest.approx(live, rel=1e-4) and stored < 5.0


def test_snapshots_older_than_the_retention_are_deleted_with_their_entries(
    make_video: MakeVideo, apply_events: Apply
) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    now = timezone.now()
    snapshot_take(now=now - timedelta(days=8))
    snapshot_take(now=now - timedelta(days=6))
    assert RankingSnapshotEntry.objects.filter(taken_at=now - timedelta(days=8)).exists()
    snapshot_take(now=now)
    kept = {now - timedelta(days=6), now}
    assert set(RankingSnapshot.objects.values_list("taken_at", flat=True)) == kept
    assert set(RankingSnapshotEntry.objects.values_list("taken_at", flat=True)) == kept
    # One entry row per position of every list: the global and the category list of each window.
    assert RankingSnapshotEntry.objects.filter(taken_at=now).count() == 2 * len(WINDOWS)


# --- GET /rankings/videos/<id>/history/ ------------------------------------------------------


def test_history_has_one_point_per_snapshot_with_null_rank_outside_the_top(
    api: APIClient, make_video: MakeVideo, apply_events: Apply, settings: Any
) -> None:
    settings.RANKING_SNAPSHOT_DEPTH = 2
    a, b, c = make_video(), make_video(), make_video()
    now = timezone.now()
    times = [now - timedelta(minutes=m) for m in (15, 10, 5)]
    apply_events([*likes(a.id, 1), *likes(b.id, 2), *likes(c.id, 3)])  # c, b, a: a is third, not kept
    snapshot_take(now=times[0])
    apply_events(likes(a.id, 3))  # a 20: first
    snapshot_take(now=times[1])
    apply_events(likes(b.id, 8))  # b 50, a 20, c 15
    snapshot_take(now=times[2])

    body = get_ok(api, f"/api/v1/rankings/videos/{a.id}/history/")
    assert (body["video_id"], body["window"], body["category"]) == (a.id, "day", None)
    assert (body["snapshot_interval_s"], body["depth"]) == (300, 2)
    assert body["points"] == [
        {"taken_at": iso(times[0]), "rank": None, "score": None},
        {"taken_at": iso(times[1]), "rank": 1, "score": 20.0},
        {"taken_at": iso(times[2]), "rank": 2, "score": 20.0},
    ]
    since = get_ok(api, f"/api/v1/rankings/videos/{c.id}/history/", since=iso(times[1]))
    assert since["since"] == iso(times[1])
    assert [(p["rank"], p["score"]) for p in since["points"]] == [(2, 15.0), (None, None)]


def test_history_in_the_videos_category_and_per_window(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    sport = CategoryFactory(slug="sport", name="Sport")
    star, mine = make_video(category=sport), make_video()
    apply_events([*likes(star.id, 5), *likes(mine.id, 1)])
    snapshot_take()
    overall = get_ok(api, f"/api/v1/rankings/videos/{mine.id}/history/")
    in_music = get_ok(api, f"/api/v1/rankings/videos/{mine.id}/history/", category="music")
    assert [p["rank"] for p in overall["points"]] == [2]
    assert in_music["category"] == "music" and [p["rank"] for p in in_music["points"]] == [1]
    for window in WINDOWS:
        assert len(get_ok(api, f"/api/v1/rankings/videos/{mine.id}/history/", window=window)["points"]) == 1


def test_history_refuses_unknown_unpublished_and_other_category_videos(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    CategoryFactory(slug="sport", name="Sport")
    hidden, video = make_video(status="hidden"), make_video()
    apply_events([*likes(hidden.id, 1), *likes(video.id, 1)])
    snapshot_take()
    url = "/api/v1/rankings/videos/{}/history/"
    assert error_of(api.get(url.format(999999)), 404)["details"] == {"video_id": 999999}
    assert error_of(api.get(url.format(2**63)), 404)["details"] == {"video_id": 2**63}
    assert error_of(api.get(url.format(hidden.id)), 404)["code"] == "not_found"
    outside = error_of(api.get(url.format(video.id), {"category": "sport"}), 404)
    assert outside["details"] == {"video_id": video.id, "category": "sport"}
    assert error_of(api.get(url.format(video.id), {"category": "jazz"}), 404)["details"] == {"category": "jazz"}
    assert set(error_of(api.get(url.format(video.id), {"since": "last week"}), 400)["details"]) == {"since"}
    assert set(error_of(api.get(url.format(video.id), {"window": "year"}), 400)["details"]) == {"window"}


def test_history_before_any_snapshot_is_empty(api: APIClient, make_video: MakeVideo, rankings_ready: None) -> None:
    video = make_video()
    assert get_ok(api, f"/api/v1/rankings/videos/{video.id}/history/")["points"] == []
