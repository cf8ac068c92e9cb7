"""What editors do in the admin, and what the rankings do about it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from events.models import EventType
from rankings.selectors import ranking_top
from scoring.models import DeadLetter
from tests.conftest import wire

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]


@pytest.fixture
def editor_client(client: Client) -> Client:
    User.objects.create_superuser("editor", "editor@example.com", "a-long-password-42")
    client.login(username="editor", password="a-long-password-42")
    return client


def day_scores() -> dict[int, float]:
    return {e.video["id"]: e.score for e in ranking_top(window="day", limit=100).results}


def test_admin_lists_render_with_search_and_filters(editor_client: Client, make_video: Callable[..., Any]) -> None:
    make_video(title="Sunrise over the Alps")
    for url in (
        "/admin/videos/video/?q=Sunrise",
        "/admin/videos/video/?status__exact=published",
        "/admin/videos/category/",
        "/admin/events/eventtype/",
        "/admin/events/apikey/",
        "/admin/scoring/deadletter/",
        "/admin/auth/user/",
    ):
        response = editor_client.get(url)
        assert response.status_code == 200, url
    assert b"Sunrise over the Alps" in editor_client.get("/admin/videos/video/?q=Sunrise").content


def test_bulk_hide_and_publish_actions_move_videos_out_of_and_back_into_the_rankings(
    editor_client: Client,
    make_video: Callable[..., Any],
    apply_events: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    a, b, c = make_video(), make_video(), make_video()
    apply_events([wire(a.id, "share"), wire(b.id, "like"), wire(c.id, "view")])
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(
            "/admin/videos/video/", {"action": "hide_videos", "_selected_action": [a.id, b.id]}, follow=True
        )
    assert response.status_code == 200
    assert b"2 video(s) set to hidden" in response.content
    assert day_scores() == {c.id: 1.0}
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post("/admin/videos/video/", {"action": "publish_videos", "_selected_action": [a.id, b.id]})
    assert day_scores() == {a.id: 50.0, b.id: 5.0, c.id: 1.0}
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post("/admin/videos/video/", {"action": "remove_videos", "_selected_action": [c.id]})
    assert day_scores() == {a.id: 50.0, b.id: 5.0}


REBUILD_URL = "/admin/events/eventtype/actions/rebuild_rankings/"


def test_weight_change_warns_and_the_rebuild_button_applies_it_to_history(
    editor_client: Client, make_video: Callable[..., Any], apply_events: Any, eager_celery: None
) -> None:
    video = make_video()
    apply_events([wire(video.id, "like"), wire(video.id, "like")])
    like = EventType.objects.get(name="like")
    response = editor_client.post(
        f"/admin/events/eventtype/{like.id}/change/",
        {"name": "like", "weight": "7.5", "dedupe_window_seconds": "0", "description": like.description},
        follow=True,
    )
    assert b"Weight of 'like' changed" in response.content
    # The warning points at the button and links to the list that shows it.
    assert b"press 'Rebuild rankings' on the <a href=\"/admin/events/eventtype/\">" in response.content
    # The list the warning links to shows the button: a form that POSTs, no row to select.
    assert f'action="{REBUILD_URL}"'.encode() in response.content
    assert day_scores() == {video.id: 10.0}  # history keeps the old weight until the rebuild
    response = editor_client.post(REBUILD_URL, follow=True)
    assert response.redirect_chain == [("/admin/events/eventtype/", 302)]
    assert b"Rankings rebuild queued" in response.content
    assert day_scores() == {video.id: 15.0}


def test_rebuild_button_queues_one_rebuild_on_the_maintenance_queue(editor_client: Client) -> None:
    import redis
    from django.conf import settings

    name = "scoring.tasks.rankings_rebuild"
    queue = settings.CELERY_TASK_ROUTES[name]["queue"]
    assert queue == "maintenance"  # never behind the event path's batches
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)  # a plain node, also beside a cluster
    assert editor_client.post(REBUILD_URL).status_code == 302
    assert [json.loads(m)["headers"]["task"] for m in broker.lrange(queue, 0, -1)] == [name]


def test_rebuild_button_refuses_get_and_editors_without_change_permission(
    client: Client, editor_client: Client
) -> None:
    from django.contrib.auth.models import Permission

    assert editor_client.get(REBUILD_URL).status_code == 405  # a state change is never a link
    viewer = User.objects.create_user("viewer", "viewer@example.com", "a-long-password-42", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_eventtype"))
    client.force_login(viewer)
    page = client.get("/admin/events/eventtype/")
    assert page.status_code == 200 and REBUILD_URL.encode() not in page.content
    assert client.post(REBUILD_URL).status_code == 403


def test_dead_letters_filter_by_pending_or_replayed(editor_client: Client) -> None:
    from django.utils import timezone

    pending = DeadLetter.objects.create(reason="unknown video", raw="{}")
    replayed = DeadLetter.objects.create(reason="unknown video", raw="{}", replayed_at=timezone.now())

    def listed(query: str) -> set[int]:
        response = editor_client.get(f"/admin/scoring/deadletter/{query}")
        assert response.status_code == 200
        return {letter.id for letter in response.context["cl"].result_list}

    assert listed("") == {pending.id, replayed.id}
    assert listed("?state=pending") == {pending.id}
    assert listed("?state=replayed") == {replayed.id}
    sidebar = editor_client.get("/admin/scoring/deadletter/").content
    assert b"By state" in sidebar and b"Pending" in sidebar and b"Replayed" in sidebar


def test_dead_letter_replay_action_counts_the_event_once_its_video_exists(
    editor_client: Client, make_video: Callable[..., Any], apply_events: Any
) -> None:
    video = make_video()
    apply_events([wire(video.id, "like"), "garbage"])
    letter = DeadLetter.objects.get()
    response = editor_client.post(
        "/admin/scoring/deadletter/", {"action": "replay", "_selected_action": [letter.id]}, follow=True
    )
    assert b"Replayed 0; still failing 1." in response.content
    assert DeadLetter.objects.filter(replayed_at__isnull=True).count() == 1  # the retry failed again, kept
    assert day_scores() == {video.id: 5.0}
