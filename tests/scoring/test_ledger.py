"""The worker path: a stored batch is counted once into Postgres and Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from events.models import EventType
from events.wire import WireEvent, record_encode
from leaderboard.windows import hour_floor
from rankings.selectors import ranking_top
from scoring.drift import rankings_drift_check
from scoring.ledger import batch_process, batch_store, counters_fold, dead_letter_replay, window_rollover
from scoring.models import Batch, DeadLetter, WindowState
from scoring.selectors import counts_by_hour, score_breakdown
from tests.conftest import counted, wire

pytestmark = pytest.mark.django_db


def day_scores(category: str | None = None) -> dict[int, float]:
    return {e.video["id"]: e.score for e in ranking_top(window="day", category_slug=category, limit=100).results}


def test_counts_events_into_hourly_counters_and_rankings(make_video: Callable[..., Any], apply_events: Any) -> None:
    a, b = make_video(), make_video()
    outcome = apply_events([wire(a.id, "view"), wire(a.id, "like"), wire(b.id, "share")])
    assert outcome.counted == 3
    assert day_scores() == {b.id: 50.0, a.id: 6.0}
    assert counted(a.id, "like")[0] == 1


def test_same_event_id_twice_counts_once_in_one_batch_and_across_batches(
    make_video: Callable[..., Any], apply_events: Any
) -> None:
    video = make_video()
    raw = wire(video.id, "like", event_id=str(uuid.uuid4()))
    assert apply_events([raw, raw]).counted == 1
    assert apply_events([raw]).counted == 0
    assert day_scores() == {video.id: 5.0}


def test_views_by_one_user_count_once_per_dedupe_window(make_video: Callable[..., Any], apply_events: Any) -> None:
    video = make_video()
    window = EventType.objects.get(name="view").dedupe_window_seconds
    assert window == 1800
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    outcome = apply_events(
        [
            wire(video.id, "view", user_id="u1", occurred_at=start),
            wire(video.id, "view", user_id="u1", occurred_at=start + timedelta(minutes=10)),
            wire(video.id, "view", user_id="u2", occurred_at=start + timedelta(minutes=10)),
            wire(video.id, "view", user_id="u1", occurred_at=start + timedelta(minutes=31)),
            wire(video.id, "view", occurred_at=start),  # anonymous views are not deduped by user
            wire(video.id, "view", occurred_at=start),
        ]
    )
    assert outcome.counted == 5
    # A second, overlapping delivery of the same user's view (new event id) adds nothing.
    assert apply_events([wire(video.id, "view", user_id="u1", occurred_at=start + timedelta(minutes=5))]).counted == 0
    assert day_scores() == {video.id: 5.0}


def test_likes_are_not_deduped_by_user(make_video: Callable[..., Any], apply_events: Any) -> None:
    video = make_video()
    assert apply_events([wire(video.id, "like", user_id="u1"), wire(video.id, "like", user_id="u1")]).counted == 2


def test_watch_counts_completion_ratio_capped_at_one(make_video: Callable[..., Any], apply_events: Any) -> None:
    short, film = make_video(duration_seconds=60), make_video(duration_seconds=7200)
    apply_events(
        [
            wire(short.id, "watch", watch_seconds=30),  # 0.5 units
            wire(film.id, "watch", watch_seconds=7200),  # 1 unit
            wire(film.id, "watch", watch_seconds=99999),  # capped at 1 unit
        ]
    )
    assert day_scores() == {film.id: 40.0, short.id: 10.0}
    assert counted(film.id)[1] == pytest.approx(2.0)


def test_bad_messages_go_to_dead_letters_and_do_not_stop_the_batch(
    make_video: Callable[..., Any], apply_events: Any
) -> None:
    video = make_video()
    outcome = apply_events(
        ["not json", "[1, 2]", wire(video.id, "teleport"), wire(987654, "view"), wire(video.id, "like")]
    )
    assert outcome.counted == 1
    assert outcome.dead_letters == 4
    reasons = sorted(DeadLetter.objects.values_list("reason", flat=True))
    assert reasons == ["not JSON", "not a JSON object", "unknown event type 'teleport'", "unknown video 987654"]
    assert day_scores() == {video.id: 5.0}


@pytest.mark.parametrize("watch", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
def test_a_watch_time_no_number_can_hold_is_a_dead_letter_not_a_failed_batch(
    make_video: Callable[..., Any], apply_events: Any, watch: str
) -> None:
    """Python's JSON parser accepts NaN and Infinity, which no JSON column, counter or
    score can hold; a producer writing to Kafka directly could send them."""
    video = make_video(duration_seconds=100)
    bad = wire(video.id, "watch", watch_seconds=50).replace('"watch_seconds": 50', f'"watch_seconds": {watch}')
    assert watch in bad
    outcome = apply_events([bad, wire(video.id, "watch", watch_seconds=50)])
    assert (outcome.counted, outcome.dead_letters) == (1, 1)
    assert DeadLetter.objects.get().reason == "invalid watch_seconds"
    assert counted(video.id)[1] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "occurred",
    [
        "2026-13-01T00:00:00+00:00",
        "2026-02-30T00:00:00+00:00",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_an_occurred_at_no_calendar_holds_is_a_dead_letter_not_a_failed_batch(
    make_video: Callable[..., Any], apply_events: Any, occurred: str
) -> None:
    video = make_video()
    bad = json.dumps({**json.loads(wire(video.id)), "occurred_at": occurred})
    outcome = apply_events([bad, wire(video.id)])
    assert (outcome.counted, outcome.dead_letters) == (1, 1)
    assert DeadLetter.objects.get().reason == "missing or invalid occurred_at"


def test_dead_letter_replay_counts_once_the_cause_is_fixed(make_video: Callable[..., Any], apply_events: Any) -> None:
    video = make_video()
    apply_events([wire(video.id, "clap")])
    letter = DeadLetter.objects.get()
    assert dead_letter_replay(dead_letter_ids=[letter.id]).failed == 1
    EventType.objects.create(name="clap", weight=2.0)
    fresh = DeadLetter.objects.filter(replayed_at__isnull=True).get()
    result = dead_letter_replay(dead_letter_ids=[fresh.id])
    assert (result.replayed, result.failed) == (1, 0)
    assert day_scores() == {video.id: 2.0}


def test_an_event_of_a_request_record_that_cannot_count_is_its_own_dead_letter_and_replays(
    make_video: Callable[..., Any], apply_events: Any
) -> None:
    """The rest of the record counts; the dead letter holds that one event, and a replay counts it."""
    video = make_video()
    now = timezone.now()
    events = [
        WireEvent(event_id=str(uuid.uuid4()), video_id=video.id, type=kind, occurred_at=now, request_id="r-7")
        for kind in ("like", "clap", "view")
    ]
    outcome = apply_events([record_encode(events=events, request_id="r-7", accepted_at=now).decode()])
    assert (outcome.received, outcome.counted, outcome.dead_letters) == (3, 2, 1)
    letter = DeadLetter.objects.get()
    assert letter.reason == "unknown event type 'clap'"
    assert json.loads(letter.raw)["event_id"] == str(events[1].event_id)
    EventType.objects.create(name="clap", weight=2.0)
    assert (dead_letter_replay(dead_letter_ids=[letter.id]).replayed, day_scores()) == (1, {video.id: 8.0})
    # Replayed once: its id is claimed now, so the same record read again counts nothing more.
    again = apply_events([record_encode(events=events, request_id="r-7", accepted_at=now).decode()])
    assert again.counted == 0 and day_scores() == {video.id: 8.0}


def test_processing_a_batch_again_changes_nothing(make_video: Callable[..., Any], rankings_ready: None) -> None:
    video = make_video()
    batch = batch_store(topic="t", messages=[[0, 1, wire(video.id, "share")]])
    first = batch_process(batch_id=str(batch.id))
    second = batch_process(batch_id=str(batch.id))
    assert (first.counted, second.already_processed) == (1, True)
    assert day_scores() == {video.id: 50.0}
    assert Batch.objects.get(id=batch.id).applied_at is not None


def test_hidden_video_events_are_counted_but_not_ranked_until_republished(
    make_video: Callable[..., Any], apply_events: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from videos.services import video_set_status

    video, other = make_video(), make_video()
    apply_events([wire(video.id, "like"), wire(other.id, "view")])
    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=video.id, status="hidden")
    assert day_scores() == {other.id: 1.0}
    apply_events([wire(video.id, "share")])
    assert day_scores() == {other.id: 1.0}
    with django_capture_on_commit_callbacks(execute=True):
        video_set_status(video_id=video.id, status="published")
    assert day_scores() == {video.id: 55.0, other.id: 1.0}
    assert day_scores("music") == {video.id: 55.0, other.id: 1.0}


def test_the_fold_moves_hours_that_left_the_window_into_hourly_rows_and_changes_no_count(
    make_video: Callable[..., Any], apply_events: Any
) -> None:
    """An event is in one counter row: a minute row while its hour is (partly) inside the hour
    window, an hourly row after; the move changes no count, no score and no breakdown."""
    anchor = hour_floor(timezone.now()) - timedelta(hours=48)  # a controlled clock, at an exact hour
    WindowState.objects.update_or_create(id=1, defaults={"anchor": anchor})
    video = make_video()
    apply_events(
        [
            wire(video.id, "like", occurred_at=anchor),  # inside the window
            wire(video.id, "comment", occurred_at=anchor - timedelta(minutes=50)),  # inside, the hour before
            wire(video.id, "share", occurred_at=anchor - timedelta(minutes=65)),  # before the window
        ]
    )

    def rows() -> tuple[int, int]:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM scoring_minutecounter WHERE video_id = %s", [video.id])
            minute = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM scoring_hourlycounter WHERE video_id = %s", [video.id])
            return minute, cur.fetchone()[0]

    def totals() -> dict[str, float]:
        return {w: sum(r["score"] for r in rows_) for w, rows_ in score_breakdown(video_id=video.id).items()}

    counts, breakdown = counts_by_hour(video_ids=[video.id]), totals()
    assert rows() == (2, 1)
    assert counters_fold() == 0  # the comment's hour still ends inside the window
    window_rollover(now=anchor + timedelta(minutes=60))
    assert counters_fold() == 1  # its hour has left the window: its minute row moves
    assert rows() == (1, 2)
    assert counts_by_hour(video_ids=[video.id]) == counts
    window_rollover(now=anchor + timedelta(minutes=120))
    assert counters_fold() == 1
    assert rows() == (0, 3)
    assert counts_by_hour(video_ids=[video.id]) == counts
    assert counters_fold() == 0
    # The windows moved meanwhile: compare what the same anchor gives, Redis against Postgres too.
    assert totals()["all"] == breakdown["all"] == pytest.approx(65.0)
    assert rankings_drift_check().drifted is False
    # A late event of a folded hour goes to its hourly row.
    apply_events([wire(video.id, "like", occurred_at=anchor)])
    assert rows() == (0, 3)
    assert counted(video.id, "like")[0] == 2
