"""Hourly activity: the selectors behind sparklines and the activity chart, their cache,
and the two JSON endpoints, against the real Postgres and Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.test import APIClient

from events.models import EventType
from scoring.selectors import ACTIVITY_MAX_IDS as MAX_IDS
from scoring.selectors import activity_range, video_activity_hourly, video_activity_hourly_cached
from tests.conftest import wire
from tests.http import error_of
from videos.models import Video

pytestmark = pytest.mark.django_db

Apply = Callable[[list[str]], Any]
MakeVideo = Callable[..., Any]
HOUR = timedelta(hours=1)


# --- selectors -----------------------------------------------------------------------


def test_series_is_weight_times_units_per_hour_oldest_first(make_video: MakeVideo, apply_events: Apply) -> None:
    now = timezone.now()
    video = make_video(duration_seconds=120)
    apply_events(
        [
            wire(video.id, "like", occurred_at=now),  # 5
            wire(video.id, "like", occurred_at=now),  # 5
            wire(video.id, "view", occurred_at=now - 3 * HOUR, user_id="a"),  # 1
            wire(video.id, "view", occurred_at=now - 3 * HOUR, user_id="b"),  # 1
            wire(video.id, "watch", occurred_at=now - 5 * HOUR, watch_seconds=60),  # 20 x 0.5
            wire(video.id, "share", occurred_at=now - 30 * HOUR),  # outside a day
        ]
    )
    day = video_activity_hourly(video_ids=[video.id], hours=24, now=now)[video.id]
    assert len(day) == 24
    assert day[23] == 10.0
    assert day[20] == 2.0
    assert day[18] == 10.0
    assert sum(day) == 22.0
    week = video_activity_hourly(video_ids=[video.id], hours=168, now=now)[video.id]
    assert len(week) == 168
    assert week[167 - 30] == 50.0
    assert sum(week) == 72.0


def test_series_covers_the_current_hour_and_the_hours_before(make_video: MakeVideo) -> None:
    now = timezone.now()
    start, end = activity_range(hours=24, now=now)
    assert start == now.replace(minute=0, second=0, microsecond=0) - 23 * HOUR
    assert end - start == 24 * HOUR and start <= now < end


def test_quiet_videos_get_zeros_and_unpublished_or_unknown_ones_are_left_out(make_video: MakeVideo) -> None:
    quiet = make_video()
    hidden = make_video(status=Video.Status.HIDDEN)
    removed = make_video(status=Video.Status.REMOVED)
    series = video_activity_hourly(video_ids=[quiet.id, hidden.id, removed.id, 10**9], hours=24)
    assert series == {quiet.id: [0.0] * 24}


def test_negative_weights_count_against_the_hour(make_video: MakeVideo, apply_events: Apply) -> None:
    EventType.objects.create(name="dislike", weight=-2.0)
    video = make_video()
    now = timezone.now()
    apply_events([wire(video.id, "dislike", occurred_at=now), wire(video.id, "like", occurred_at=now)])
    assert video_activity_hourly(video_ids=[video.id], hours=1, now=now) == {video.id: [3.0]}


def test_current_weights_apply_to_past_counts(make_video: MakeVideo, apply_events: Apply) -> None:
    video = make_video()
    now = timezone.now()
    apply_events([wire(video.id, "like", occurred_at=now)])
    EventType.objects.filter(name="like").update(weight=7.5)
    assert video_activity_hourly(video_ids=[video.id], hours=1, now=now) == {video.id: [7.5]}


def test_a_page_of_videos_costs_one_query(
    make_video: MakeVideo, apply_events: Apply, django_assert_num_queries: Any
) -> None:
    videos = [make_video() for _ in range(20)]
    apply_events([wire(v.id, "like") for v in videos])
    with django_assert_num_queries(1):
        series = video_activity_hourly(video_ids=[v.id for v in videos], hours=24)
    assert sorted(series) == sorted(v.id for v in videos)
    assert all(s[-1] == 5.0 for s in series.values())


def test_limits_are_enforced_before_any_query(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        with pytest.raises(ValueError, match="at most"):
            video_activity_hourly(video_ids=range(1, MAX_IDS + 2), hours=24)
        with pytest.raises(ValueError, match="hours"):
            video_activity_hourly(video_ids=[1], hours=0)
        with pytest.raises(ValueError, match="hours"):
            video_activity_hourly(video_ids=[1], hours=169)
        assert video_activity_hourly(video_ids=[], hours=24) == {}


def test_cached_reads_query_only_for_missing_ids(
    make_video: MakeVideo, apply_events: Apply, django_assert_num_queries: Any
) -> None:
    a, b = make_video(), make_video()
    hidden = make_video(status=Video.Status.HIDDEN)
    apply_events([wire(a.id, "like")])
    with django_assert_num_queries(1):
        first = video_activity_hourly_cached(video_ids=[a.id, hidden.id], hours=24)
    assert set(first) == {a.id}
    with django_assert_num_queries(0):
        assert video_activity_hourly_cached(video_ids=[a.id, hidden.id], hours=24) == first
    with django_assert_num_queries(1):
        both = video_activity_hourly_cached(video_ids=[a.id, b.id, hidden.id], hours=24)
    assert both == {a.id: first[a.id], b.id: [0.0] * 24}


def test_cached_values_lag_at_most_until_they_expire(make_video: MakeVideo, apply_events: Apply) -> None:
    video = make_video()
    now = timezone.now()
    assert video_activity_hourly_cached(video_ids=[video.id], hours=1, now=now) == {video.id: [0.0]}
    apply_events([wire(video.id, "like", occurred_at=now)])
    assert video_activity_hourly_cached(video_ids=[video.id], hours=1, now=now) == {video.id: [0.0]}
    cache.clear()
    assert video_activity_hourly_cached(video_ids=[video.id], hours=1, now=now) == {video.id: [5.0]}
    # A new hour is a new set of buckets, so it never reads the last hour's entry.
    later = now + HOUR
    assert video_activity_hourly_cached(video_ids=[video.id], hours=2, now=later) == {video.id: [5.0, 0.0]}


def test_an_unreachable_cache_falls_back_to_postgres(
    make_video: MakeVideo, apply_events: Apply, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = make_video()
    apply_events([wire(video.id, "like")])

    def down(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("cache down")

    monkeypatch.setattr(cache, "get_many", down)
    assert video_activity_hourly_cached(video_ids=[video.id], hours=24)[video.id][-1] == 5.0
    monkeypatch.undo()
    monkeypatch.setattr(cache, "set_many", down)
    cache.clear()
    assert video_activity_hourly_cached(video_ids=[video.id], hours=24)[video.id][-1] == 5.0


# --- GET /api/v1/videos/<id>/activity/ --------------------------------------------------


def test_activity_endpoint_shape(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    video = make_video()
    apply_events([wire(video.id, "share")])
    response = api.get(f"/api/v1/videos/{video.id}/activity/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"video_id", "hours", "start", "scores"}
    assert (body["video_id"], body["hours"], len(body["scores"]), body["scores"][-1]) == (video.id, 24, 24, 50.0)
    assert body["start"].endswith(":00:00Z")
    week = api.get(f"/api/v1/videos/{video.id}/activity/", {"hours": 168}).json()
    assert len(week["scores"]) == 168 and week["scores"][-1] == 50.0


@pytest.mark.parametrize("hours", ["0", "169", "-1", "abc", "1.5"])
def test_activity_endpoint_rejects_bad_hours(api: APIClient, make_video: MakeVideo, hours: str) -> None:
    video = make_video()
    error = error_of(api.get(f"/api/v1/videos/{video.id}/activity/", {"hours": hours}), 400)
    assert error["code"] == "invalid" and "hours" in error["details"]


def test_activity_endpoint_404s_for_unknown_hidden_and_huge_ids(api: APIClient, make_video: MakeVideo) -> None:
    hidden = make_video(status=Video.Status.HIDDEN)
    for video_id in (hidden.id, 10**9, 2**63, 10**30):
        error = error_of(api.get(f"/api/v1/videos/{video_id}/activity/"), 404)
        assert error["code"] == "not_found"
        assert error["details"] == {"video_id": video_id}


# --- GET /api/v1/rankings/sparklines/ ------------------------------------------------


def test_sparklines_endpoint_shape(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    a, b = make_video(), make_video()
    hidden = make_video(status=Video.Status.HIDDEN)
    apply_events([wire(a.id, "like"), wire(b.id, "comment")])
    response = api.get("/api/v1/rankings/sparklines/", {"ids": f"{a.id}, {b.id},{hidden.id},{a.id},999999"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"hours", "start", "series"}
    assert body["hours"] == 24
    assert set(body["series"]) == {str(a.id), str(b.id)}
    assert body["series"][str(a.id)][-1] == 5.0
    assert body["series"][str(b.id)][-1] == 10.0
    assert all(len(s) == 24 for s in body["series"].values())


def test_sparklines_accept_the_maximum_number_of_ids(api: APIClient, make_video: MakeVideo) -> None:
    video = make_video()
    ids = ",".join(str(i) for i in range(video.id, video.id + MAX_IDS))
    body = api.get("/api/v1/rankings/sparklines/", {"ids": ids, "hours": "168"}).json()
    assert body["series"] == {str(video.id): [0.0] * 168}


@pytest.mark.parametrize(
    "ids",
    ["", " ", "abc", "1,,2", "1,a", "-1", "0", "1.5", "1;2", "١٢", str(2**63), ",".join(map(str, range(1, 102)))],
)
def test_sparklines_reject_bad_ids(api: APIClient, ids: str) -> None:
    error = error_of(api.get("/api/v1/rankings/sparklines/", {"ids": ids}), 400)
    assert error["code"] == "invalid" and list(error["details"]) == ["ids"]


def test_sparklines_require_ids_and_valid_hours(api: APIClient) -> None:
    assert "ids" in error_of(api.get("/api/v1/rankings/sparklines/"), 400)["details"]
    assert "hours" in error_of(api.get("/api/v1/rankings/sparklines/", {"ids": "1", "hours": "500"}), 400)["details"]


def test_schema_documents_the_activity_endpoints(api: APIClient) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()
    single = schema["paths"]["/api/v1/videos/{video_id}/activity/"]["get"]
    batch = schema["paths"]["/api/v1/rankings/sparklines/"]["get"]
    assert {"200", "400", "404"} <= set(single["responses"])
    assert {"200", "400"} <= set(batch["responses"])
    assert {p["name"] for p in batch["parameters"]} == {"ids", "hours"}
