"""The date hierarchy by index probes lists the same periods as Django's own query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone

from core import admin as core_admin
from core.admin import IndexedDatesQuerySet
from videos.models import Video

pytestmark = pytest.mark.django_db

MOMENTS = [
    datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
    datetime(2025, 12, 31, 23, 30, tzinfo=UTC),  # already 2026 in Paris
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # the night Paris moves to summer time
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    datetime(2026, 10, 24, 22, 30, tzinfo=UTC),  # midnight in Paris, summer time
    datetime(2026, 10, 25, 23, 30, tzinfo=UTC),  # past midnight in Paris, winter time
    datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Sao_Paulo"])
@pytest.mark.parametrize("kind", ["year", "month", "day"])
@pytest.mark.parametrize("order", ["ASC", "DESC"])
def test_same_periods_as_djangos_datetimes(make_video: Callable[..., Any], zone: str, kind: str, order: str) -> None:
    for moment in MOMENTS:
        make_video(published_at=moment)
    make_video(published_at=None)  # no date: in no period
    make_video(published_at=datetime(2023, 5, 1, tzinfo=UTC), status=Video.Status.HIDDEN)
    with timezone.override(zone):
        for qs in (Video.objects.all(), Video.objects.filter(status=Video.Status.PUBLISHED)):
            expected = list(qs.datetimes("published_at", kind, order))  # type: ignore[arg-type]
            probed = IndexedDatesQuerySet(model=Video, query=qs.query).datetimes("published_at", kind, order)
            assert probed == expected
            assert [p.tzinfo for p in probed] == [e.tzinfo for e in expected]


@pytest.mark.parametrize("probe_min_rows", [0, 20_000], ids=["probes", "django-sort"])
def test_changelist_drilldown_lists_the_periods_with_videos(
    admin_client: Any, make_video: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, probe_min_rows: int
) -> None:
    monkeypatch.setattr(core_admin, "PROBE_MIN_ROWS", probe_min_rows)
    make_video(published_at=datetime(2026, 3, 2, 10, tzinfo=UTC))
    make_video(published_at=datetime(2026, 5, 7, 10, tzinfo=UTC))
    make_video(published_at=datetime(2026, 5, 9, 10, tzinfo=UTC))
    top = admin_client.get("/admin/videos/video/").content.decode()
    assert "?published_at__month=3&amp;published_at__year=2026" in top
    assert "?published_at__month=5&amp;published_at__year=2026" in top
    assert "published_at__month=4" not in top
    may = admin_client.get("/admin/videos/video/?published_at__year=2026&published_at__month=5").content.decode()
    assert "published_at__day=7" in may and "published_at__day=9" in may and "published_at__day=8" not in may
    probed = admin_client.get("/admin/videos/video/").context["cl"].queryset
    assert isinstance(probed, IndexedDatesQuerySet) is (probe_min_rows == 0)
