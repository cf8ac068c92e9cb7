"""Exactly-once effect when processes die between steps or Redis loses its data."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from core.redis import redis_client
from leaderboard import keys as rk
from leaderboard import store as store_module
from rankings.selectors import ranking_top
from scoring.drift import rankings_drift_check
from scoring.ledger import batch_process, batch_store, batches_repair
from scoring.models import Batch
from scoring.rebuild import rankings_ensure_built, rankings_rebuild
from tests.conftest import wire

pytestmark = pytest.mark.cluster


def scores(window: str = "day", category: str | None = None) -> dict[int, float]:
    return {e.video["id"]: e.score for e in ranking_top(window=window, category_slug=category, limit=100).results}


def all_windows() -> dict[str, dict[int, float]]:
    return {w: scores(w) for w in ("hour", "day", "week", "all", "trending")} | {"music": scores("day", "music")}


def process_in_own_connection(batch_id: str) -> None:
    try:
        batch_process(batch_id=batch_id)
    finally:
        connection.close()


def store(raws: list[str]) -> str:
    return str(batch_store(topic="t", messages=[[0, i, raw] for i, raw in enumerate(raws)]).id)


@pytest.mark.django_db
def test_worker_dying_after_commit_is_repaired_once(make_video: Callable[..., Any], rankings_ready: None) -> None:
    video = make_video()
    batch_id = store([wire(video.id, "share"), wire(video.id, "like")])
    batch_process(batch_id=batch_id, apply=False)  # the process dies right after the commit
    assert scores() == {}
    repaired = batches_repair(requeue=False, unapplied_after_s=0)
    assert repaired.applied == 1
    assert scores() == {video.id: 55.0}
    # The redelivered task and a second sweep find nothing left to do.
    assert batch_process(batch_id=batch_id).already_processed
    assert batches_repair(requeue=False, unapplied_after_s=0).applied == 0
    assert scores() == {video.id: 55.0}


@pytest.mark.django_db
def test_apply_running_twice_after_a_lost_acknowledgement_counts_once(
    make_video: Callable[..., Any], rankings_ready: None
) -> None:
    from leaderboard.store import deltas_apply

    video = make_video()
    batch_id = store([wire(video.id, "comment")])
    batch_process(batch_id=batch_id)
    deltas = Batch.objects.get(id=batch_id).deltas or {}
    # Redis applied it but the worker died before recording that in Postgres.
    Batch.objects.filter(id=batch_id).update(applied_at=None)
    deltas_apply(batch_id=batch_id, deltas=deltas)
    batches_repair(requeue=False, unapplied_after_s=0)
    assert scores() == {video.id: 10.0}


@pytest.mark.django_db
def test_unprocessed_batches_are_requeued_by_the_sweeper(make_video: Callable[..., Any], rankings_ready: None) -> None:
    video = make_video()
    batch_id = store([wire(video.id, "like")])  # the Celery message was lost (e.g. Redis restarted)
    assert batches_repair(requeue=True, lease_s=0).requeued == [batch_id]


@pytest.mark.django_db
def test_redis_wiped_rankings_come_back_identical(make_video: Callable[..., Any], apply_events: Any) -> None:
    a, b, c = make_video(), make_video(), make_video()
    apply_events([wire(a.id, "share"), wire(b.id, "like"), wire(c.id, "watch", watch_seconds=60)])
    before = all_windows()
    redis_client().flushdb()
    assert not redis_client().exists(rk.ready_key(rk.GLOBAL))
    assert rankings_ensure_built() is True
    after = all_windows()
    trending_before, trending_after = before.pop("trending"), after.pop("trending")
    assert after == before
    # Trending is read through a decay factor of the wall clock, which moved meanwhile.
    assert trending_after == pytest.approx(trending_before, rel=1e-4)
    assert rankings_ensure_built() is False


@pytest.mark.django_db
def test_a_swap_sent_again_after_a_timeout_keeps_the_rebuilt_rankings(
    make_video: Callable[..., Any], apply_events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leaderboard import store
    from leaderboard.lua import SWAP

    video = make_video()
    apply_events([wire(video.id, "share"), wire(video.id, "like")])
    real_script = store.script

    def sent_twice(source: str) -> Any:
        # Valkey stalled past the client's socket timeout (paused, swapping), then ran the
        # swap; the client, which saw only the timeout, sent the same call again.
        run = real_script(source)
        if source != SWAP:
            return run

        def call(**kwargs: Any) -> Any:
            run(**kwargs)
            return run(**kwargs)

        return call

    monkeypatch.setattr(store, "script", sent_twice)
    rankings_rebuild()
    assert all_windows()["music"] == {video.id: 55.0}
    assert scores("all") == {video.id: 55.0}


@pytest.mark.django_db
def test_batch_waiting_for_redis_is_not_counted_twice_by_the_rebuild(
    make_video: Callable[..., Any], apply_events: Any
) -> None:
    video = make_video()
    apply_events([wire(video.id, "like")])
    redis_client().flushdb()
    pending = store([wire(video.id, "share")])
    outcome = batch_process(batch_id=pending)  # Redis has no rankings: counted in Postgres, waits
    assert outcome.applied is False
    rankings_rebuild()
    batches_repair(requeue=False, unapplied_after_s=0)
    assert scores() == {video.id: 55.0}


@pytest.mark.django_db(transaction=True)
def test_events_committed_during_a_rebuild_are_counted_exactly_once(make_video: Callable[..., Any]) -> None:
    rankings_rebuild()
    video = make_video()
    first = store([wire(video.id, "like")])
    batch_process(batch_id=first)
    during = store([wire(video.id, "share")])
    ran: list[bool] = []

    def process_concurrently(stage: str, done: int, total: int | None) -> None:
        # Runs inside the rebuild's snapshot: another worker commits and applies a batch now.
        if stage == "scores" and not ran:
            ran.append(True)
            worker = threading.Thread(target=process_in_own_connection, args=(during,))
            worker.start()
            worker.join()

    result = rankings_rebuild(progress=process_concurrently)
    assert ran and result.replayed_batches >= 1
    assert scores() == {video.id: 55.0}
    assert scores("all") == {video.id: 55.0}


@pytest.mark.django_db
def test_a_server_restarted_from_an_older_copy_of_a_scope_rebuilds_it_and_applies_nothing_to_it(
    make_video: Callable[..., Any], apply_events: Any
) -> None:
    """A node restarted from a snapshot (or an append-only file, or a promoted replica) holds its
    scopes as they were then, ready key and applied markers included, without the batches applied
    after: those are marked applied in Postgres and would never be applied again."""
    video = make_video()
    apply_events([wire(video.id, "like")])
    scope = rk.scope_for(video.category_id)
    client = redis_client()
    keys = [k for k in client.scan_iter(match=rk.scope_prefix(scope) + "*", count=1000)]
    copy = {key: client.dump(key) for key in keys}  # the snapshot
    apply_events([wire(video.id, "like")])  # after the snapshot: in no copy
    assert scores()[video.id] == 10.0

    # The restart: the copy comes back, written by another run of the server.
    client.delete(*client.scan_iter(match=rk.scope_prefix(scope) + "*", count=1000))
    for key, value in copy.items():
        client.restore(key, 0, value)
    client.set(rk.boot_key(scope), "0" * 40)
    assert scores()[video.id] == 5.0
    assert store_module.scopes_not_built(scopes=[scope, rk.GLOBAL]) == [scope]

    outcome = apply_events([wire(video.id, "like")])  # counted in Postgres, not added to the old copy
    assert outcome.counted == 1
    assert Batch.objects.filter(applied_at__isnull=True).count() == 1
    assert scores()[video.id] == 5.0

    assert rankings_ensure_built() is True  # what the watchdog runs
    assert scores()[video.id] == 15.0
    assert store_module.scopes_not_built(scopes=[scope, rk.GLOBAL]) == []
    assert batches_repair(requeue=False, unapplied_after_s=0).applied == 1  # the late batch: inside the build
    assert scores()[video.id] == 15.0
    assert rankings_drift_check().drifted is False
