"""The catalogue API: published videos, active categories and event types,
paginated with limit/offset, read from Postgres."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient, APIRequestFactory

from events.read_api import EventTypeListApi
from tests.factories import CategoryFactory
from tests.http import error_of, get_ok

pytestmark = pytest.mark.django_db

MakeVideo = Callable[..., Any]


# --- /videos/ ------------------------------------------------------------------------


def test_video_list_is_paginated_by_limit_and_offset(api: APIClient, make_video: MakeVideo) -> None:
    videos = [make_video() for _ in range(5)]
    first = get_ok(api, "/api/v1/videos/", limit=2)
    assert first["count"] == 5
    assert [v["id"] for v in first["results"]] == [videos[0].id, videos[1].id]
    assert first["previous"] is None and "offset=2" in first["next"]
    last = get_ok(api, "/api/v1/videos/", limit=2, offset=4)
    assert [v["id"] for v in last["results"]] == [videos[4].id]
    assert last["next"] is None
    assert get_ok(api, "/api/v1/videos/", offset=10)["results"] == []


def test_video_list_default_page_is_20(api: APIClient, make_video: MakeVideo) -> None:
    for _ in range(21):
        make_video()
    body = get_ok(api, "/api/v1/videos/")
    assert (body["count"], len(body["results"])) == (21, 20)


def test_video_list_shows_only_published_videos(api: APIClient, make_video: MakeVideo) -> None:
    shown = make_video()
    make_video(status="hidden")
    make_video(status="removed")
    body = get_ok(api, "/api/v1/videos/")
    assert body["count"] == 1
    assert [v["id"] for v in body["results"]] == [shown.id]


def test_video_list_filters_by_category_slug(api: APIClient, make_video: MakeVideo) -> None:
    sport = CategoryFactory(slug="sport", name="Sport")
    make_video()
    match = make_video(category=sport)
    body = get_ok(api, "/api/v1/videos/", category="sport")
    assert [(v["id"], v["category"]) for v in body["results"]] == [(match.id, "sport")]


def test_video_list_with_unknown_category_is_a_404(api: APIClient, make_video: MakeVideo) -> None:
    make_video()
    error = error_of(api.get("/api/v1/videos/", {"category": "jazz"}), 404)
    assert error["details"] == {"category": "jazz"} and "jazz" in error["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "101"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"offset": "-1"}, "offset")],
)
def test_bad_paging_parameters_are_a_400_naming_the_field(
    api: APIClient, make_video: MakeVideo, params: dict[str, str], field: str
) -> None:
    make_video()
    for url in ("/api/v1/videos/", "/api/v1/categories/"):
        error = error_of(api.get(url, params), 400)
        assert error["code"] == "invalid" and set(error["details"]) == {field}, url


def test_video_list_reads_a_page_in_a_fixed_number_of_queries(
    api: APIClient, make_video: MakeVideo, django_assert_max_num_queries: Any
) -> None:
    for n in range(30):
        make_video(category=CategoryFactory(slug=f"c{n % 3}"))
    with django_assert_max_num_queries(2):  # the count and one joined page
        body = get_ok(api, "/api/v1/videos/", limit=30)
    assert len(body["results"]) == 30


def test_video_detail_has_the_catalogue_fields(api: APIClient, make_video: MakeVideo) -> None:
    published_at = timezone.now()
    video = make_video(title="Sunset", description="Timelapse", duration_seconds=90, published_at=published_at)
    body = get_ok(api, f"/api/v1/videos/{video.id}/")
    assert body == {
        "id": video.id,
        "title": "Sunset",
        "description": "Timelapse",
        "category": "music",
        "category_name": "Music",
        "owner": video.owner.username,
        "thumbnail_url": video.thumbnail_url,
        "duration_seconds": 90,
        "published_at": published_at.isoformat().replace("+00:00", "Z"),
    }


def test_video_detail_of_unknown_or_unpublished_video_is_a_404(api: APIClient, make_video: MakeVideo) -> None:
    hidden, removed = make_video(status="hidden"), make_video(status="removed")
    for video_id in (hidden.id, removed.id, 999999):
        error = error_of(api.get(f"/api/v1/videos/{video_id}/"), 404)
        assert error["code"] == "not_found" and error["details"] == {"video_id": video_id}


# --- /categories/ ----------------------------------------------------------------------


def test_category_list_shows_active_categories_by_name_paginated(api: APIClient) -> None:
    CategoryFactory(slug="sport", name="Sport")
    CategoryFactory(slug="art", name="Art")
    CategoryFactory(slug="news", name="News")
    CategoryFactory(slug="old", name="Archive", is_active=False)
    body = get_ok(api, "/api/v1/categories/", limit=2)
    assert body["count"] == 3
    assert [c["slug"] for c in body["results"]] == ["art", "news"]
    assert set(body["results"][0]) == {"id", "slug", "name", "description"}
    assert [c["slug"] for c in get_ok(api, "/api/v1/categories/", limit=2, offset=2)["results"]] == ["sport"]


# --- /event-types/ ----------------------------------------------------------------------


def test_event_types_list_names_weights_and_dedupe_windows() -> None:
    # Called through the view itself: the route is mounted by the project URLconf.
    request = APIRequestFactory().get("/api/v1/event-types/", {"limit": 3})
    response = EventTypeListApi.as_view()(request)
    assert response.status_code == 200
    assert response.data["count"] == 5
    assert [t["name"] for t in response.data["results"]] == ["comment", "like", "share"]
    request = APIRequestFactory().get("/api/v1/event-types/", {"limit": 100})
    types = {t["name"]: t for t in EventTypeListApi.as_view()(request).data["results"]}
    assert types["view"]["weight"] == 1.0 and types["view"]["dedupe_window_seconds"] == 1800
    assert set(types["view"]) == {"name", "weight", "dedupe_window_seconds", "description"}
    bad = EventTypeListApi.as_view()(APIRequestFactory().get("/api/v1/event-types/", {"limit": "500"}))
    assert bad.status_code == 400 and set(bad.data["error"]["details"]) == {"limit"}


def test_schema_documents_the_catalogue_endpoints(api: APIClient) -> None:
    paths = api.get("/api/schema/", {"format": "json"}).json()["paths"]
    for path, codes in {
        "/api/v1/videos/": {"200", "400", "404", "503"},
        "/api/v1/videos/{video_id}/": {"200", "404", "503"},
        "/api/v1/categories/": {"200", "400", "503"},
    }.items():
        assert set(paths[path]["get"]["responses"]) == codes, path
    limit = next(p for p in paths["/api/v1/videos/"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
