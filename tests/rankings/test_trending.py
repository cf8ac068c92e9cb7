"""Trending with a controlled clock: forward decay halves a score per half-life,
and moving the reference time (rebase) changes no score a reader sees."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from leaderboard.windows import hour_floor
from rankings.selectors import ranking_top
from scoring.ledger import trending_rebase
from scoring.rebuild import rankings_rebuild
from tests.conftest import wire

pytestmark = [pytest.mark.django_db, pytest.mark.cluster]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(hour_floor(timezone.now()))
    monkeypatch.setattr(timezone, "now", fake)
    return fake


def trending(video_id: int) -> float:
    (entry,) = [e for e in ranking_top(window="trending").results if e.video["id"] == video_id]
    return entry.score


def test_trending_halves_after_one_half_life_and_survives_a_rebase(
    clock: Clock, make_video: Callable[..., Any], apply_events: Any
) -> None:
    start = clock.now
    rankings_rebuild()  # reference time t0 = this hour
    video = make_video()
    apply_events([wire(video.id, "like", occurred_at=start + timedelta(minutes=5)) for _ in range(2)])
    half_life = timedelta(seconds=settings.RANKING_TRENDING_HALF_LIFE_S)
    # Minute resolution: the likes decay from their minute, five minutes after the start.
    ahead = 2 ** (timedelta(minutes=5) / half_life)
    assert trending(video.id) == pytest.approx(10.0 * ahead)
    clock.now = start + half_life
    assert trending(video.id) == pytest.approx(5.0 * ahead)
    clock.now = start + 2 * half_life
    assert trending(video.id) == pytest.approx(2.5 * ahead)

    assert trending_rebase(now=start + 2 * half_life, min_age_s=0) is True
    assert trending(video.id) == pytest.approx(2.5 * ahead)
    # A late event for the first hour, applied after the rebase, weighs what it would have before.
    apply_events([wire(video.id, "like", occurred_at=start + timedelta(minutes=30))])
    late = 1.25 * 2 ** (timedelta(minutes=30) / half_life)
    assert trending(video.id) == pytest.approx(2.5 * ahead + late)


def test_trending_ranks_a_fresh_like_above_an_old_share_after_enough_half_lives(
    clock: Clock, make_video: Callable[..., Any], apply_events: Any
) -> None:
    rankings_rebuild()
    old, fresh = make_video(), make_video()
    apply_events([wire(old.id, "share", occurred_at=clock.now)])  # 50 points now
    clock.now += timedelta(seconds=4 * settings.RANKING_TRENDING_HALF_LIFE_S)  # 50 / 16 = 3.125 later
    apply_events([wire(fresh.id, "like", occurred_at=clock.now)])  # 5 points then
    assert [e.video["id"] for e in ranking_top(window="trending").results] == [fresh.id, old.id]
    assert [e.video["id"] for e in ranking_top(window="all").results] == [old.id, fresh.id]
