"""Scopes are independent: a scope that lost its keys is rebuilt alone, and curation moves
a video between scopes exactly (counting batches before and after the move)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.redis import redis_client
from leaderboard import keys as rk
from rankings.selectors import ranking_top
from scoring.drift import rankings_drift_check
from scoring.ledger import batches_repair
from scoring.rebuild import rankings_ensure_built
from tests.conftest import wire
from tests.factories import CategoryFactory
from videos.services import video_set_status

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]


def day(slug: str | None = None) -> dict[int, float]:
    return {e.video["id"]: e.score for e in ranking_top(window="day", category_slug=slug, limit=100).results}


def test_a_lost_scope_is_rebuilt_alone(make_video: Callable[..., Any], apply_events: Any) -> None:
    jazz: Any = CategoryFactory(slug="jazz")
    a, b = make_video(), make_video(category=jazz)
    apply_events([wire(a.id, "like"), wire(b.id, "share")])
    global_before = redis_client().get(rk.ready_key(rk.GLOBAL))
    # The shard holding the jazz scope restarted empty: only its keys are gone.
    for key in redis_client().scan_iter(match=rk.scope_prefix(rk.scope_for(jazz.id)) + "*"):
        redis_client().delete(key)
    assert day("jazz") == {}
    assert rankings_ensure_built() is True
    assert day("jazz") == {b.id: 50.0}
    assert redis_client().get(rk.ready_key(rk.GLOBAL)) == global_before, "the global scope was not rebuilt"
    assert day() == {b.id: 50.0, a.id: 5.0}
    assert not rankings_drift_check().drifted


def test_a_batch_meeting_a_lost_scope_rebuilds_that_scope_alone(
    make_video: Callable[..., Any], apply_events: Any, eager_celery: None
) -> None:
    jazz: Any = CategoryFactory(slug="jazz")
    a, b = make_video(), make_video(category=jazz)
    apply_events([wire(a.id, "like"), wire(b.id, "share")])
    kept = [rk.GLOBAL, rk.scope_for(a.category_id)]
    generations = [redis_client().get(rk.ready_key(scope)) for scope in kept]
    # The shard holding the jazz scope restarted empty, and a worker's batch is the first to
    # notice: the rebuild it asks for (run at once here) must leave the other scopes alone.
    for key in redis_client().scan_iter(match=rk.scope_prefix(rk.scope_for(jazz.id)) + "*"):
        redis_client().delete(key)
    apply_events([wire(b.id, "like")])
    assert day("jazz") == {b.id: 55.0}
    assert [redis_client().get(rk.ready_key(scope)) for scope in kept] == generations, "a kept scope was rebuilt"
    batches_repair(requeue=False, unapplied_after_s=0)  # the batch's other scopes: applied once, not again
    assert day() == {b.id: 55.0, a.id: 5.0} and day("music") == {a.id: 5.0}
    assert not rankings_drift_check().drifted


def test_recategorised_video_moves_with_its_whole_history(
    make_video: Callable[..., Any], apply_events: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        jazz: Any = CategoryFactory(slug="jazz")  # a new category opens its (empty) scope on commit
    video = make_video()
    apply_events([wire(video.id, "like"), wire(video.id, "comment")])
    with django_capture_on_commit_callbacks(execute=True):
        video.category = jazz
        video.save()
    assert day("music") == {}
    assert day("jazz") == {video.id: 15.0}
    apply_events([wire(video.id, "like")])  # counted after the move: goes to the new category only
    assert day("jazz") == {video.id: 20.0} and day() == {video.id: 20.0} and day("music") == {}
    assert not rankings_drift_check().drifted


def test_hidden_video_counts_on_in_postgres_and_returns_with_everything(
    make_video: Callable[..., Any], apply_events: Any, django_capture_on_commit_callbacks: Any
) -> None:
    video, other = make_video(), make_video()
    apply_events([wire(video.id, "share"), wire(other.id, "like")])
    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=video.id, status="hidden")
    assert day() == {other.id: 5.0}
    apply_events([wire(video.id, "share")])  # while hidden: counted, not ranked
    assert day() == {other.id: 5.0} and day("music") == {other.id: 5.0}
    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=video.id, status="published")
    assert day() == {video.id: 100.0, other.id: 5.0}
    assert day("music") == {video.id: 100.0, other.id: 5.0}
    assert not rankings_drift_check().drifted
