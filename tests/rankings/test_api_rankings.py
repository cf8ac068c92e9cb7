"""The rankings HTTP contract: shapes, validation, errors, standings, neighbours,
rank history and the OpenAPI description, against the real servers."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from leaderboard.windows import WINDOWS
from rankings.services import snapshot_take
from tests.conftest import wire
from tests.factories import CategoryFactory
from tests.http import error_of, get_ok

pytestmark = pytest.mark.django_db

Apply = Callable[[list[str]], Any]
MakeVideo = Callable[..., Any]


def likes(video_id: int, n: int, **kwargs: Any) -> list[str]:
    return [wire(video_id, "like", **kwargs) for _ in range(n)]


# --- GET /rankings/ -----------------------------------------------------------------


def test_ranking_page_has_the_documented_shape(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    video = make_video(title="Cat plays the piano", duration_seconds=185, published_at=timezone.now())
    apply_events(likes(video.id, 2))
    body = get_ok(api, "/api/v1/rankings/")
    assert set(body) == {"window", "category", "generated_at", "total", "limit", "offset", "results"}
    assert (body["window"], body["category"], body["limit"], body["offset"], body["total"]) == ("day", None, 20, 0, 1)
    [entry] = body["results"]
    assert entry["rank"] == 1 and entry["score"] == 10.0 and entry["previous_rank"] is None
    assert entry["video"] == {
        "id": video.id,
        "title": "Cat plays the piano",
        "category": "music",
        "owner": video.owner.username,
        "thumbnail_url": video.thumbnail_url,
        "duration_seconds": 185,
        "published_at": video.published_at.isoformat().replace("+00:00", "Z"),
    }


@pytest.mark.parametrize("limit", ["101", "0", "-1", "ten", "1.5"])
def test_limit_outside_1_to_100_or_not_an_integer_is_a_400_naming_limit(
    api: APIClient, rankings_ready: None, limit: str
) -> None:
    error = error_of(api.get("/api/v1/rankings/", {"limit": limit}), 400)
    assert error["code"] == "invalid"
    assert set(error["details"]) == {"limit"}


@pytest.mark.parametrize("offset", ["-1", "x"])
def test_bad_offset_is_a_400_naming_offset(api: APIClient, rankings_ready: None, offset: str) -> None:
    error = error_of(api.get("/api/v1/rankings/", {"offset": offset}), 400)
    assert set(error["details"]) == {"offset"}


def test_limit_100_is_accepted(api: APIClient, rankings_ready: None) -> None:
    assert get_ok(api, "/api/v1/rankings/", limit=100)["limit"] == 100


def test_unknown_window_is_a_400_listing_the_allowed_windows(api: APIClient, rankings_ready: None) -> None:
    error = error_of(api.get("/api/v1/rankings/", {"window": "month"}), 400)
    [message] = error["details"]["window"]
    assert "month" in message
    for window in WINDOWS:
        assert window in message


@pytest.mark.parametrize(
    "url",
    ["/api/v1/rankings/", "/api/v1/rankings/movers/"],
)
def test_unknown_category_is_a_404_naming_it(api: APIClient, rankings_ready: None, url: str) -> None:
    error = error_of(api.get(url, {"category": "jazz"}), 404)
    assert error["code"] == "not_found"
    assert "jazz" in error["message"]
    assert error["details"] == {"category": "jazz"}


def test_every_window_can_be_read(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    for window in WINDOWS:
        body = get_ok(api, "/api/v1/rankings/", window=window)
        assert body["window"] == window
        assert [r["video"]["id"] for r in body["results"]] == [video.id]


@pytest.mark.parametrize("cluster", [False, True], ids=["one node", "cluster"])
def test_redis_unreachable_is_a_503_in_the_error_shape(
    api: APIClient, make_video: MakeVideo, apply_events: Apply, settings: Any, cluster: bool
) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    # Every Redis client comes from core.redis, one per URL: pointing the URL at a dead port is Redis down.
    # A cluster client that reaches no node raises RedisClusterException, not a RedisError.
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    settings.REDIS_CLUSTER = cluster
    for url in (
        "/api/v1/rankings/",
        "/api/v1/rankings/movers/",
        f"/api/v1/rankings/videos/{video.id}/",
        f"/api/v1/rankings/videos/{video.id}/around/",
        f"/api/v1/rankings/videos/{video.id}/history/",
    ):
        error = error_of(api.get(url), 503)
        assert error["code"] == "service_unavailable", url
        assert "retry" in error["message"]


# --- GET /rankings/videos/<id>/ ----------------------------------------------------------


def test_video_standing_covers_every_window_globally_and_in_its_category_or_one_window_on_request(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    sport = CategoryFactory(slug="sport", name="Sport")
    top = make_video(category=sport)
    mine, rival = make_video(), make_video()
    apply_events([*likes(top.id, 9), *likes(mine.id, 3), *likes(rival.id, 1)])
    body = get_ok(api, f"/api/v1/rankings/videos/{mine.id}/")
    assert body["video"]["id"] == mine.id and body["video"]["category"] == "music"
    assert set(body["standings"]) == set(WINDOWS) == set(body["breakdown"])
    for window in ("hour", "day", "week", "all"):
        assert body["standings"][window] == {
            "global": {"rank": 2, "score": 15.0, "percentile": 50.0, "total": 3},
            "category": {"rank": 1, "score": 15.0, "percentile": 100.0, "total": 2},
        }
    assert body["standings"]["trending"]["category"]["rank"] == 1
    # Asked for one window, the same standing and breakdown of that window alone.
    for video in (top, mine, rival):
        whole = get_ok(api, f"/api/v1/rankings/videos/{video.id}/")
        for window in WINDOWS:
            one = get_ok(api, f"/api/v1/rankings/videos/{video.id}/", window=window)
            assert set(one["standings"]) == set(one["breakdown"]) == {window}
            for scope in ("global", "category"):
                assert one["standings"][window][scope] == approx_if(window, whole["standings"][window][scope])
            assert one["breakdown"][window] == approx_if(window, whole["breakdown"][window])
            assert (one["video"], one["rising"]) == (whole["video"], whole["rising"])


def approx_if(window: str, expected: Any) -> Any:
    """Trending decays with the clock: two reads a moment apart agree to a few seconds of decay."""
    if window != "trending":
        return expected
    if isinstance(expected, list):
        return [approx_if(window, row) for row in expected]
    return {k: pytest.approx(v, rel=1e-3) if isinstance(v, float) else v for k, v in expected.items()}


@pytest.mark.parametrize("window", ["month", "", "DAY"])
def test_a_video_standing_for_an_unknown_window_is_a_400_naming_window(
    api: APIClient, make_video: MakeVideo, apply_events: Apply, window: str
) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    error = error_of(api.get(f"/api/v1/rankings/videos/{video.id}/", {"window": window}), 400)
    assert set(error["details"]) == {"window"}
    # Validated before the video is looked up: an unknown video with a bad window is the same 400.
    assert error_of(api.get("/api/v1/rankings/videos/999999/", {"window": window}), 400)["details"] == error["details"]


def test_percentile_is_highest_for_the_top_video_and_lowest_for_the_last(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    videos = [make_video() for _ in range(5)]
    apply_events([raw for n, v in enumerate(videos) for raw in likes(v.id, n + 1)])
    percentiles = [
        get_ok(api, f"/api/v1/rankings/videos/{v.id}/")["standings"]["day"]["global"]["percentile"] for v in videos
    ]
    assert percentiles == [0.0, 25.0, 50.0, 75.0, 100.0]


def test_only_ranked_video_is_at_the_100th_percentile(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    standing = get_ok(api, f"/api/v1/rankings/videos/{video.id}/")["standings"]["day"]["global"]
    assert standing == {"rank": 1, "score": 5.0, "percentile": 100.0, "total": 1}


def test_breakdown_adds_up_to_the_score_in_every_window(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    video = make_video(duration_seconds=100)
    other = make_video()
    now = timezone.now()
    apply_events(
        [
            wire(video.id, "view", user_id="u1"),
            wire(video.id, "view", user_id="u2"),
            *likes(video.id, 2),
            wire(video.id, "watch", watch_seconds=25),  # 0.25 units
            wire(video.id, "comment", occurred_at=now - timedelta(hours=5)),  # not in the hour window
            wire(video.id, "share", occurred_at=now - timedelta(hours=50)),  # week and all only
            *likes(other.id, 1),
        ]
    )
    body = get_ok(api, f"/api/v1/rankings/videos/{video.id}/")
    expected = {"hour": 17.0, "day": 27.0, "week": 77.0, "all": 77.0}
    for window in WINDOWS:
        rows = {row["type"]: row for row in body["breakdown"][window]}
        assert {"view", "like", "comment", "share", "watch"} <= set(rows)
        for row in rows.values():
            # units are printed to 6 decimals, so the product may differ by weight x 5e-7
            assert row["score"] == pytest.approx(row["weight"] * row["units"], abs=abs(row["weight"]) * 1e-6)
        total = sum(row["score"] for row in rows.values())
        assert total == pytest.approx(body["standings"][window]["global"]["score"], rel=1e-5), window
        if window in expected:
            assert total == pytest.approx(expected[window]), window
    day = {row["type"]: row for row in body["breakdown"]["day"]}
    assert (day["view"]["events"], day["view"]["units"], day["view"]["weight"]) == (2, 2.0, 1.0)
    assert (day["watch"]["events"], day["watch"]["units"], day["watch"]["score"]) == (1, 0.25, 5.0)
    assert day["share"]["events"] == 0
    assert {row["type"]: row["events"] for row in body["breakdown"]["all"]}["share"] == 1
    trending = {row["type"]: row for row in body["breakdown"]["trending"]}
    assert trending["share"]["events"] == 1 and 0 < trending["share"]["units"] < 1


def test_video_without_events_is_listed_with_null_standings(
    api: APIClient, make_video: MakeVideo, rankings_ready: None
) -> None:
    video = make_video()
    body = get_ok(api, f"/api/v1/rankings/videos/{video.id}/")
    assert body["standings"]["day"]["global"] == {"rank": None, "score": None, "percentile": None, "total": 0}
    assert all(row["events"] == 0 for row in body["breakdown"]["all"])


def test_unknown_video_standing_is_a_404(api: APIClient, rankings_ready: None) -> None:
    error = error_of(api.get("/api/v1/rankings/videos/999999/"), 404)
    assert error["details"] == {"video_id": 999999}


def test_unpublished_video_standing_is_a_404(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    hidden, removed = make_video(status="hidden"), make_video(status="removed")
    apply_events([*likes(hidden.id, 1), *likes(removed.id, 1)])
    for video in (hidden, removed):
        assert error_of(api.get(f"/api/v1/rankings/videos/{video.id}/"), 404)["code"] == "not_found"


# --- GET /rankings/videos/<id>/around/ -------------------------------------------------------


def _ladder(make_video: MakeVideo, apply_events: Apply, n: int = 7) -> list[Any]:
    """n videos with distinct scores; returned best first."""
    videos = [make_video() for _ in range(n)]
    apply_events([raw for i, v in enumerate(videos) for raw in likes(v.id, n - i)])
    return videos


def test_around_returns_radius_neighbours_with_their_ranks(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    videos = _ladder(make_video, apply_events)
    body = get_ok(api, f"/api/v1/rankings/videos/{videos[3].id}/around/", radius=2)
    assert (body["window"], body["category"], body["video_id"], body["rank"]) == ("day", None, videos[3].id, 4)
    assert [(r["video"]["id"], r["rank"], r["is_target"]) for r in body["results"]] == [
        (videos[1].id, 2, False),
        (videos[2].id, 3, False),
        (videos[3].id, 4, True),
        (videos[4].id, 5, False),
        (videos[5].id, 6, False),
    ]


def test_around_is_cut_at_the_top_and_bottom_of_the_ranking(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    videos = _ladder(make_video, apply_events, n=4)
    top = get_ok(api, f"/api/v1/rankings/videos/{videos[0].id}/around/", radius=2)
    assert [r["rank"] for r in top["results"]] == [1, 2, 3]
    bottom = get_ok(api, f"/api/v1/rankings/videos/{videos[3].id}/around/", radius=50, category="music")
    assert [r["rank"] for r in bottom["results"]] == [1, 2, 3, 4]
    alone = get_ok(api, f"/api/v1/rankings/videos/{videos[2].id}/around/", radius=0)
    assert [(r["video"]["id"], r["is_target"]) for r in alone["results"]] == [(videos[2].id, True)]


def test_around_a_video_without_a_score_is_empty(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    ranked, unranked = make_video(), make_video()
    apply_events(likes(ranked.id, 1))
    body = get_ok(api, f"/api/v1/rankings/videos/{unranked.id}/around/")
    assert body["results"] == [] and body["rank"] is None


@pytest.mark.parametrize("radius", ["51", "-1", "x"])
def test_around_radius_outside_0_to_50_is_a_400(
    api: APIClient, make_video: MakeVideo, rankings_ready: None, radius: str
) -> None:
    video = make_video()
    error = error_of(api.get(f"/api/v1/rankings/videos/{video.id}/around/", {"radius": radius}), 400)
    assert set(error["details"]) == {"radius"}


def test_around_unknown_hidden_or_other_category_video_is_a_404(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    CategoryFactory(slug="sport", name="Sport")
    hidden, visible = make_video(status="hidden"), make_video()
    apply_events([*likes(hidden.id, 1), *likes(visible.id, 1)])
    assert error_of(api.get("/api/v1/rankings/videos/999999/around/"), 404)["details"] == {"video_id": 999999}
    error_of(api.get(f"/api/v1/rankings/videos/{hidden.id}/around/"), 404)
    outside = error_of(api.get(f"/api/v1/rankings/videos/{visible.id}/around/", {"category": "sport"}), 404)
    assert outside["details"] == {"video_id": visible.id, "category": "sport"}
    unknown = error_of(api.get(f"/api/v1/rankings/videos/{visible.id}/around/", {"category": "jazz"}), 404)
    assert unknown["details"] == {"category": "jazz"}


# --- rank history: previous_rank and /rankings/movers/ -----------------------------------


@pytest.mark.cluster  # the snapshot cache is written on every master
def test_previous_rank_appears_after_a_snapshot(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    a, b = make_video(), make_video()
    apply_events([*likes(a.id, 2), *likes(b.id, 1)])
    assert [r["previous_rank"] for r in get_ok(api, "/api/v1/rankings/")["results"]] == [None, None]
    snapshot_take()
    apply_events(likes(b.id, 5))
    body = get_ok(api, "/api/v1/rankings/")
    assert [(r["video"]["id"], r["rank"], r["previous_rank"]) for r in body["results"]] == [(b.id, 1, 2), (a.id, 2, 1)]
    category = get_ok(api, "/api/v1/rankings/", category="music")
    assert [r["previous_rank"] for r in category["results"]] == [2, 1]


def test_movers_before_any_snapshot_are_empty(api: APIClient, make_video: MakeVideo, apply_events: Apply) -> None:
    video = make_video()
    apply_events(likes(video.id, 1))
    body = get_ok(api, "/api/v1/rankings/movers/")
    assert body == {"window": "day", "category": None, "since": None, "climbers": [], "new_entries": []}


@pytest.mark.cluster  # the snapshot cache is written on every master
def test_movers_list_climbers_and_new_entries_since_the_snapshot(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    a, b, c = make_video(), make_video(), make_video()
    apply_events([*likes(a.id, 3), *likes(b.id, 2), *likes(c.id, 1)])
    snapshot_take()
    newcomer = make_video()
    apply_events([*likes(c.id, 10), *likes(newcomer.id, 4)])  # c: 55, newcomer: 20, a: 15, b: 10
    body = get_ok(api, "/api/v1/rankings/movers/", window="day", category="music")
    assert body["since"] is not None and body["category"] == "music"
    assert [(m["video"]["id"], m["previous_rank"], m["rank"], m["change"]) for m in body["climbers"]] == [
        (c.id, 3, 1, 2)
    ]
    assert [(n["video"]["id"], n["rank"], n["previous_rank"]) for n in body["new_entries"]] == [(newcomer.id, 2, None)]
    assert body["climbers"][0]["score"] == 55.0
    limited = get_ok(api, "/api/v1/rankings/movers/", limit=1)
    assert len(limited["climbers"]) == 1 and len(limited["new_entries"]) == 1


def test_movers_limit_is_validated(api: APIClient, rankings_ready: None) -> None:
    assert set(error_of(api.get("/api/v1/rankings/movers/", {"limit": "101"}), 400)["details"]) == {"limit"}
    assert set(error_of(api.get("/api/v1/rankings/movers/", {"window": "year"}), 400)["details"]) == {"window"}


# --- OpenAPI ---------------------------------------------------------------------------


def test_schema_documents_parameters_and_every_response_of_the_rankings_endpoints(api: APIClient) -> None:
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/v1/rankings/": ({"window", "category", "limit", "offset", "as_of"}, {"200", "400", "404", "503"}),
        "/api/v1/rankings/movers/": ({"window", "category", "limit"}, {"200", "400", "404", "503"}),
        "/api/v1/rankings/videos/{video_id}/": ({"video_id", "window"}, {"200", "400", "404", "503"}),
        "/api/v1/rankings/videos/{video_id}/around/": (
            {"video_id", "window", "category", "radius"},
            {"200", "400", "404", "503"},
        ),
        "/api/v1/rankings/videos/{video_id}/history/": (
            {"video_id", "window", "category", "since"},
            {"200", "400", "404", "503"},
        ),
    }
    for path, (params, codes) in expected.items():
        operation = paths[path]["get"]
        assert {p["name"] for p in operation["parameters"]} == params, path
        assert set(operation["responses"]) == codes, path
        for code in codes - {"200"}:
            assert operation["responses"][code]["content"]["application/json"]["examples"], (path, code)
    window = next(p for p in paths["/api/v1/rankings/"]["get"]["parameters"] if p["name"] == "window")
    assert window["schema"]["enum"] == list(WINDOWS)


# --- the bodies built without the serializers -------------------------------------------


def test_the_hot_bodies_are_exactly_what_their_documenting_serializers_print(
    api: APIClient, make_video: MakeVideo, apply_events: Apply
) -> None:
    """The top page and a video's standings are built as plain dicts for speed; the output
    serializers that document them in the schema must print the very same JSON from the same data."""
    from rankings import selectors
    from rankings.api import _page_body, _video_standings_body
    from rankings.serializers import RankingPageOutputSerializer, VideoRankingOutputSerializer

    sport = CategoryFactory(slug="sport", name="Sport")
    ranked = make_video(category=sport, published_at=timezone.now() - timedelta(days=2))
    plain = make_video(published_at=None)
    unranked = make_video()
    apply_events([*likes(ranked.id, 3), wire(ranked.id, "watch", watch_seconds=7), *likes(plain.id, 1)])
    for video in (ranked, plain, unranked):
        meta, standings = selectors.ranking_standings(video_id=video.id)
        breakdown = selectors.score_breakdown(video_id=video.id)
        by_window: dict[str, dict[str, Any]] = {w: {} for w in WINDOWS}
        for standing in standings:
            by_window[standing.window][standing.scope] = standing
        documented = VideoRankingOutputSerializer().to_representation(
            {"video": meta, "standings": by_window, "breakdown": breakdown,
             "rising": selectors.rising_inputs(breakdown=breakdown)}
        )  # fmt: skip
        built = _video_standings_body(meta, standings, breakdown)
        assert json.dumps(built) == json.dumps(documented)  # same values, same types, same key order
        served = get_ok(api, f"/api/v1/rankings/videos/{video.id}/")
        assert served["video"] == built["video"] and served["standings"]["day"] == built["standings"]["day"]
        for window in ("day", "rising"):  # a request naming a window: that window alone
            meta, standings = selectors.ranking_standings(video_id=video.id, window=window)
            documented = VideoRankingOutputSerializer().to_representation(
                {"video": meta, "standings": {window: {s.scope: s for s in standings}},
                 "breakdown": {window: breakdown[window]}, "rising": selectors.rising_inputs(breakdown=breakdown)}
            )  # fmt: skip
            built = _video_standings_body(meta, standings, breakdown)
            assert json.dumps(built) == json.dumps(documented), window
    for window, slug, offset in (("day", None, 0), ("all", "sport", 0), ("hour", None, 1), ("trending", None, 0)):
        page = selectors.ranking_top(window=window, category_slug=slug, limit=20, offset=offset)
        documented_page = RankingPageOutputSerializer().to_representation(page)
        assert json.dumps(_page_body(page)) == json.dumps(documented_page), window
