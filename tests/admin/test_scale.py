"""The admin at a million videos: the owner field searches users instead of listing them,
and the title search and the date hierarchy can use the catalogue's indexes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Max, Min
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from videos.models import Video

pytestmark = pytest.mark.django_db

AUTOCOMPLETE = "/admin/autocomplete/?app_label=videos&model_name=video&field_name=owner"


@pytest.fixture
def editor_client(client: Client) -> Client:
    User.objects.create_superuser("editor", "editor@example.com", "a-long-password-42")
    client.login(username="editor", password="a-long-password-42")
    return client


@pytest.fixture
def no_seqscan() -> Iterator[None]:
    """On a few rows a sequential scan is cheapest; forbidding it shows whether an index can serve."""
    with connection.cursor() as cur:
        cur.execute("SET enable_seqscan = off")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute("SET enable_seqscan = on")


def test_owner_field_is_an_autocomplete_and_the_endpoint_answers_with_matching_users(
    editor_client: Client, make_video: Callable[..., Any]
) -> None:
    alice = User.objects.create_user("alice.nguyen")
    User.objects.create_user("bob.smith")
    video = make_video(owner=alice)
    form = editor_client.get(f"/admin/videos/video/{video.id}/change/").content
    assert b"admin-autocomplete" in form and b'data-field-name="owner"' in form

    answer = editor_client.get(f"{AUTOCOMPLETE}&term=alice").json()
    assert answer["results"] == [{"id": str(alice.id), "text": "alice.nguyen"}]
    assert answer["pagination"] == {"more": False}
    assert editor_client.get(f"{AUTOCOMPLETE}&term=nobody-like-this").json()["results"] == []


def test_owner_autocomplete_is_for_staff_only(client: Client) -> None:
    assert client.get(f"{AUTOCOMPLETE}&term=a").status_code == 302  # to the admin login


def test_title_search_can_use_the_trigram_index(make_video: Callable[..., Any], no_seqscan: None) -> None:
    make_video(title="Sunrise over the Alps")
    with connection.cursor() as cur:  # nor a walk of the primary key: only a bitmap (GIN) scan is left
        cur.execute("SET LOCAL enable_indexscan = off")
    # The admin's search is an icontains: UPPER(title) LIKE UPPER('%...%'), the indexed expression.
    plan = Video.objects.filter(title__icontains="sunrise").explain()
    assert "video_title_upper_trgm" in plan, plan


def test_date_hierarchy_uses_the_published_at_index(make_video: Callable[..., Any], no_seqscan: None) -> None:
    make_video(published_at=timezone.now())
    # The date hierarchy's first query is the date range of the list, then a range per drill-down.
    with CaptureQueriesContext(connection) as queries:
        Video.objects.aggregate(first=Min("published_at"), last=Max("published_at"))
    with connection.cursor() as cur:
        cur.execute("EXPLAIN " + queries[0]["sql"])
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert "video_published_at" in plan, plan
    # A drill-down filters a range (published_at >= start AND < end), so the index serves it too.
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    day = Video.objects.filter(published_at__gte=start, published_at__lt=start + timedelta(days=1)).explain()
    assert "video_published_at" in day, day
