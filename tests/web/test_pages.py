"""The server-rendered pages: what the first paint shows before any script runs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from rankings import selectors
from rankings.services import snapshot_take
from tests.conftest import wire
from tests.factories import CategoryFactory
from videos.models import Video
from web import display

pytestmark = pytest.mark.django_db

Apply = Callable[[list[str]], Any]
MakeVideo = Callable[..., Any]

TIMES = "\u00d7"  # the multiplication sign before a weight
ROW = re.compile(r'<li class="row" data-id="(\d+)">')
ASSET = re.compile(r'(?:src|href)="([^"]*)"')


def likes(video_id: int, n: int, **kwargs: Any) -> list[str]:
    return [wire(video_id, "like", **kwargs) for _ in range(n)]


def page(client: Client, url: str, status: int = 200, **params: Any) -> str:
    response = client.get(url, params)
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def row_ids(html: str) -> list[int]:
    # The <template> row (id 0) is the browser's blank for new rows, not an entry.
    return [int(i) for i in ROW.findall(html) if i != "0"]


def config(html: str, element_id: str) -> dict[str, Any]:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, element_id
    return dict(json.loads(match.group(1)))


@pytest.fixture
def board(make_video: MakeVideo, apply_events: Apply) -> list[Any]:
    """Three videos ranked 1, 2, 3 in the day window."""
    videos = [make_video(title=t) for t in ("Alpine lake at dawn", "Bass solo", "city night walk")]
    for video, n in zip(videos, (30, 20, 10), strict=True):
        apply_events(likes(video.id, n))
    return videos


# --- the live ranking ----------------------------------------------------------------


def test_live_page_lists_the_ranking_best_first(client: Client, board: list[Any]) -> None:
    html = page(client, "/")
    assert row_ids(html) == [v.id for v in board]
    for video in board:
        assert f'href="/videos/{video.id}/"' in html
        assert video.title in html
    assert ">150<" in html and ">100<" in html and ">50<" in html
    assert 'id="total">3<' in html
    cfg = config(html, "live-config")
    assert (cfg["window"], cfg["category"], cfg["limit"], cfg["pollMs"]) == ("day", None, 20, 1000)
    assert cfg["api"] == {
        "rankings": "/api/v1/rankings/",
        "movers": "/api/v1/rankings/movers/",
        "sparklines": "/api/v1/rankings/sparklines/",
    }
    assert cfg["videoUrl"] == "/videos/{id}/"
    assert set(cfg["sparks"]) == {str(v.id) for v in board}


def test_rows_carry_sparklines_of_the_last_day(client: Client, board: list[Any]) -> None:
    html = page(client, "/")
    line = display.sparkline([0.0] * 23 + [150.0])["line"]
    assert f'points="{line}"' in html


def test_external_thumbnails_are_replaced_by_placeholders(client: Client, board: list[Any]) -> None:
    html = page(client, "/")
    assert "img.example.com" not in html
    assert "<img" not in html
    assert '<span class="thumb-initials">AL</span>' in html
    assert '<span class="thumb-initials">CN</span>' in html
    assert f"--hue: {display.placeholder_hue(board[0].id)}" in html


def test_same_origin_thumbnails_are_shown(client: Client, make_video: MakeVideo, apply_events: Apply) -> None:
    video = make_video(thumbnail_url="http://testserver/media/thumb.jpg")
    apply_events(likes(video.id, 1))
    assert '<img src="http://testserver/media/thumb.jpg"' in page(client, "/")


def test_pages_load_nothing_from_other_hosts(client: Client, board: list[Any]) -> None:
    for url in ("/", f"/videos/{board[0].id}/"):
        for target in ASSET.findall(page(client, url)):
            assert target.startswith(("/", "#", "?", "data:")), (url, target)


def test_static_assets_are_served_by_the_app() -> None:
    for name in ("web/css/app.css", "web/js/common.js", "web/js/live.js", "web/js/video.js", "web/favicon.svg"):
        assert finders.find(name), name


def test_window_and_category_come_from_the_query(client: Client, make_video: MakeVideo, apply_events: Apply) -> None:
    gaming = CategoryFactory(slug="gaming", name="Gaming")
    music_video = make_video(title="Recent song")
    game_video = make_video(title="Speedrun", category=gaming)
    old_video = make_video(title="Old but gold")
    apply_events(likes(music_video.id, 2) + likes(game_video.id, 1))
    apply_events(likes(old_video.id, 5, occurred_at=timezone.now() - timedelta(days=3)))

    assert row_ids(page(client, "/")) == [music_video.id, game_video.id]
    week = page(client, "/", window="week")
    assert row_ids(week) == [old_video.id, music_video.id, game_video.id]
    assert '<option value="week" selected>' in week
    games = page(client, "/", window="week", category="gaming")
    assert row_ids(games) == [game_video.id]
    assert '<option value="gaming" selected>Gaming</option>' in games
    assert config(games, "live-config")["category"] == "gaming"


def test_unknown_window_or_category_shows_the_default_list(client: Client, board: list[Any]) -> None:
    html = page(client, "/", window="month", category="nope")
    assert row_ids(html) == [v.id for v in board]
    assert '<option value="day" selected>' in html
    assert '<option value="" selected>All categories</option>' in html


def test_empty_ranking_says_so(client: Client, rankings_ready: None, category: Any) -> None:
    html = page(client, "/")
    assert row_ids(html) == []
    assert "No ranked videos in this window yet." in html
    assert "Movers appear after the first rank snapshot." in html


def test_movement_arrows_and_movers_after_a_snapshot(
    client: Client, board: list[Any], make_video: MakeVideo, apply_events: Apply
) -> None:
    before = page(client, "/").split("<template")[0]  # the blank row of the template is no entry
    assert "move-new" not in before and "move-up" not in before  # nothing to compare with yet
    assert before.count('class="c-move move-none"') == 3
    snapshot_take()
    newcomer = make_video(title="Newcomer")
    apply_events(likes(board[2].id, 10) + likes(newcomer.id, 25))
    html = page(client, "/").split("<template")[0]
    # city night walk 100 (was 3rd), Newcomer 125: order Alpine 150, Newcomer 125, Bass 100, city 100.
    assert row_ids(html) == [board[0].id, newcomer.id, board[1].id, board[2].id]
    assert 'class="c-move move-new"' in html
    assert 'title="Down from #2">▼ 1<' in html
    assert 'title="Unchanged at #1"' in html
    assert "Since the snapshot at" in html
    movers = html.split('id="movers"')[1]
    assert "Newcomer" in movers.split('id="new-entries"')[1]


def test_live_page_survives_an_unreachable_redis(
    client: Client, board: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(**kwargs: Any) -> Any:
        raise RedisConnectionError("down")

    monkeypatch.setattr(selectors, "ranking_top", down)
    html = page(client, "/")
    assert row_ids(html) == []
    assert "unreachable" in html
    assert 'data-state="offline"' in html


# --- the video page --------------------------------------------------------------------


def test_video_page_shows_standings_breakdown_and_activity(client: Client, board: list[Any]) -> None:
    video = board[1]
    html = page(client, f"/videos/{video.id}/")
    assert f'<h1 class="video-title">{video.title}</h1>' in html
    day = html.split('<tr data-window="day">')[1].split("</tr>")[0]
    assert "<strong>#2</strong>" in day and "of 3" in day and ">100<" in day and ">50<" in day
    for window in ("hour", "day", "week", "all", "trending"):
        assert f'<tr data-window="{window}">' in html
        assert f'<table class="breakdown" data-window="{window}"' in html
    like_row = html.split('<table class="breakdown" data-window="day"')[1].split('<tr data-type="like">')[1]
    assert f">{TIMES} 5<" in like_row and ">20<" in like_row and ">100<" in like_row
    assert html.count("<rect ") == 168
    assert "score 100<" in html  # the current hour's bar title
    cfg = config(html, "video-config")
    assert cfg["api"] == {
        "standing": f"/api/v1/rankings/videos/{video.id}/",
        "activity": f"/api/v1/videos/{video.id}/activity/",
        "rankHistory": [
            f"/api/v1/rankings/videos/{video.id}/history/?window=day",
            f"/api/v1/rankings/videos/{video.id}/history/?window=day&category=music",
        ],
    }
    assert cfg["rankRefreshMs"] == 300_000
    assert "No rank snapshot yet" in html.split('id="rank-empty"')[1].split("</p>")[0]


def test_video_page_charts_its_rank_history(
    client: Client, board: list[Any], make_video: MakeVideo, apply_events: Apply
) -> None:
    video = board[2]
    snapshot_take(now=timezone.now() - timedelta(hours=2))
    apply_events(likes(video.id, 30))  # 40 likes: first, globally and in its category
    snapshot_take(now=timezone.now() - timedelta(hours=1))
    html = page(client, f"/videos/{video.id}/")
    chart = html.split('id="rank-chart"')[1].split("</svg>")[0]
    paths = re.findall(r'<path class="rank-line (rank-global|rank-category)" d="([^"]*)"', chart)
    assert [name for name, _ in paths] == ["rank-global", "rank-category"]
    for _, d in paths:
        # Two points of one unbroken line: #3 first, then #1 at the top of the chart.
        line = re.fullmatch(r"M[\d.]+,([\d.]+)h0 L[\d.]+,([\d.]+)", d)
        assert line, d
        assert float(line[1]) > float(line[2]) == display.CHART_TOP
    assert ">#10<" in chart and ">#1<" in chart
    assert "Rank over the last 7 days" in html and "a point every 5 min" in html
    assert 'id="rank-empty" hidden' in html


def test_video_without_score_shows_dashes(client: Client, rankings_ready: None, make_video: MakeVideo) -> None:
    video = make_video(title="Quiet one")
    html = page(client, f"/videos/{video.id}/")
    assert f"<strong>{display.DASH}</strong>" in html and "of 0" in html


@pytest.mark.parametrize("status", [Video.Status.HIDDEN, Video.Status.REMOVED])
def test_video_page_404s_for_unpublished_videos(
    client: Client, rankings_ready: None, make_video: MakeVideo, status: str
) -> None:
    video = make_video(status=status)
    assert "Video not found" in page(client, f"/videos/{video.id}/", status=404)


def test_video_page_404s_for_unknown_and_out_of_range_ids(client: Client, rankings_ready: None) -> None:
    for video_id in (10**9, 2**63, 10**30):
        assert "Video not found" in page(client, f"/videos/{video_id}/", status=404)


def test_video_page_503s_when_redis_is_unreachable(
    client: Client, board: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(**kwargs: Any) -> Any:
        raise RedisConnectionError("down")

    monkeypatch.setattr(selectors, "ranking_standings", down)
    assert "Temporarily unavailable" in page(client, f"/videos/{board[0].id}/", status=503)


# --- display helpers (the browser test checks common.js gives the same answers) ---------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (5.0, "5"),
        (1234.0, "1,234"),
        (1234.56, "1,234.6"),
        (-3.25, "-3.3"),
        (0.05, "0.1"),
        (-0.04, "0"),
        (None, display.DASH),
    ],
)
def test_fmt_score(value: float | None, text: str) -> None:
    assert display.fmt_score(value) == text


def test_rank_chart_puts_first_on_top_and_breaks_the_line_outside_the_top() -> None:
    hour = 3_600_000
    start = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday
    chart = display.rank_chart(
        [[(start + hour, 1), (start + 2 * hour, 5), (start + 3 * hour, None), (start + 4 * hour, 30)], []],
        start,
        start + 48 * hour,
    )
    global_, category = chart["paths"]
    # x is time (840 px over 48 h: 17.5 px an hour); y runs from #1 (top) to the worst rank shown (#30).
    assert global_ == "M17.50,16.00h0 L35.00,35.59 M70.00,158.00h0"
    assert category == ""
    assert chart["worst"] == "#30"
    assert chart["ticks"] == [{"x": "420.00", "label": "Fri 02"}]
    assert display.rank_chart([[(start, 2)]], start, start + hour)["worst"] == "#10"


def test_movement_labels() -> None:
    assert display.movement(3, 5, has_snapshot=True).label == "▲ 2"
    assert display.movement(5, 3, has_snapshot=True).label == "▼ 2"
    assert display.movement(3, 3, has_snapshot=True).kind == "same"
    assert display.movement(3, None, has_snapshot=True).label == "NEW"
    assert display.movement(3, None, has_snapshot=False).kind == "none"


def test_same_origin_url() -> None:
    same = {"scheme": "https", "host": "rank.example"}
    assert display.same_origin_url("/media/a.jpg", **same) == "/media/a.jpg"
    assert display.same_origin_url("https://rank.example/a.jpg", **same) == "https://rank.example/a.jpg"
    assert display.same_origin_url("http://rank.example/a.jpg", **same) is None
    assert display.same_origin_url("//cdn.example/a.jpg", **same) is None
    assert display.same_origin_url("https://img.example.com/a.jpg", **same) is None
    assert display.same_origin_url("", **same) is None


def test_initials() -> None:
    assert display.initials("city night walk") == "CN"
    assert display.initials("  ") == "?"
    assert display.initials("#1 hit — live") == "HL"
