"""The catalogue's per-batch lookup: what counting an event needs to know about its video."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import CategoryFactory, VideoFactory
from videos.selectors import VideoFacts, video_facts

pytestmark = pytest.mark.django_db


def test_video_facts_answer_for_the_videos_that_exist_and_only_those() -> None:
    music: Any = CategoryFactory(slug="music")
    sport: Any = CategoryFactory(slug="sport")
    short: Any = VideoFactory(category=music, duration_seconds=30)
    hidden: Any = VideoFactory(category=sport, duration_seconds=600, status="hidden")
    unknown = max(short.id, hidden.id) + 1000
    asked = [hidden.id, short.id, unknown, short.id]  # repeats and an unknown id, in no order
    assert video_facts(video_ids=asked) == {
        short.id: VideoFacts(duration_seconds=30, status="published", category_id=music.id),
        hidden.id: VideoFacts(duration_seconds=600, status="hidden", category_id=sport.id),
    }
    assert video_facts(video_ids=[]) == {}
