"""Server-rendered pages: the live ranking and a video's standing.

The first paint comes from the same selectors the JSON API uses, so the page is
complete without JavaScript; the scripts then keep it current by polling the API
(see docs/live-page.md for why polling and not server-sent events).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from core.api.serializers import MAX_ID
from core.redis import REDIS_UNAVAILABLE
from leaderboard.windows import WINDOWS
from rankings import selectors
from scoring.selectors import activity_range, video_activity_hourly_cached
from videos.selectors import category_list
from web import display

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
MOVERS_SHOWN = 5
SPARK_HOURS = 24
CHART_HOURS = 168
POLL_MS = 1000
MOVERS_POLL_MS = 5000
SPARK_REFRESH_MS = 30_000  # the activity cache's lifetime: polling it faster would return the same numbers
RANK_WINDOW = "day"


def _video_url_template() -> str:
    return reverse("web-video", args=[0]).replace("/0/", "/{id}/")


def _thumb(request: HttpRequest, video: dict[str, Any]) -> dict[str, Any]:
    return {
        "src": display.same_origin_url(
            video.get("thumbnail_url") or "", scheme=request.scheme or "http", host=request.get_host()
        ),
        "initials": display.initials(video.get("title") or ""),
        "hue": display.placeholder_hue(int(video["id"])),
    }


def _row(request: HttpRequest, entry: Any, *, has_snapshot: bool, series: dict[int, list[float]]) -> dict[str, Any]:
    video = entry.video
    return {
        "rank": entry.rank,
        "previous_rank": entry.previous_rank,
        "score": display.fmt_score(entry.score),
        "movement": display.movement(entry.rank, entry.previous_rank, has_snapshot=has_snapshot),
        "video": video,
        "thumb": _thumb(request, video),
        "spark": display.sparkline(series.get(int(video["id"]), [])),
    }


def _mover(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "score_text": display.fmt_score(item["score"])}


def ranking_page(request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "day")
    window = window if window in WINDOWS else "day"
    context: dict[str, Any] = {"window": window, "category": None, "categories": [], "rows": [], "total": 0}
    series: dict[int, list[float]] = {}
    try:
        categories = list(category_list().values("slug", "name"))
        slug = request.GET.get("category") or None
        slug = slug if any(c["slug"] == slug for c in categories) else None
        page = selectors.ranking_top(window=window, category_slug=slug, limit=PAGE_SIZE)
        movers = selectors.ranking_movers(window=window, category_slug=slug, limit=MOVERS_SHOWN)
        series = video_activity_hourly_cached(video_ids=[e.video["id"] for e in page.results], hours=SPARK_HOURS)
    except (*REDIS_UNAVAILABLE, DatabaseError) as exc:
        # Still serve the page: its script keeps polling and fills it in once the stores are back.
        logger.warning("live page rendered without data: %s", exc)
        context["unavailable"] = True
        has_snapshot = False
    else:
        has_snapshot = movers.since is not None
        context.update(
            categories=categories,
            category=slug,
            total=page.total,
            generated_at=page.generated_at,
            rows=[_row(request, e, has_snapshot=has_snapshot, series=series) for e in page.results],
            movers_since=movers.since,
            climbers=[_mover(m) for m in movers.climbers],
            new_entries=[_mover(m) for m in movers.new_entries],
        )
    # The browser clones this empty row for videos that enter the list, so both share one markup.
    context["blank_row"] = {
        "rank": "",
        "score": "",
        "movement": display.Movement("none", "", ""),
        "video": {"id": 0, "title": "", "category": "", "owner": ""},
        "thumb": {"src": None, "initials": "", "hue": 0},
        "spark": display.sparkline([]),
    }
    context["windows"] = [(w, display.WINDOW_LABELS[w]) for w in WINDOWS]
    context["config"] = {
        "window": window,
        "category": context["category"],
        "limit": PAGE_SIZE,
        "moversLimit": MOVERS_SHOWN,
        "hasSnapshot": has_snapshot,
        "sparks": {str(k): v for k, v in series.items()},
        "sparkHours": SPARK_HOURS,
        "pollMs": POLL_MS,
        "moversPollMs": MOVERS_POLL_MS,
        "sparkRefreshMs": SPARK_REFRESH_MS,
        "videoUrl": _video_url_template(),
        "api": {
            "rankings": reverse("rankings-list"),
            "movers": reverse("rankings-movers"),
            "sparklines": reverse("rankings-sparklines"),
        },
    }
    return render(request, "web/ranking.html", context)


def _message(request: HttpRequest, *, status: int, title: str, text: str) -> HttpResponse:
    return render(request, "web/message.html", {"title": title, "text": text}, status=status)


def _not_found(request: HttpRequest) -> HttpResponse:
    return _message(request, status=404, title="Video not found", text="No published video has this id.")


def _breakdown(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(r["score"] for r in rows)
    biggest = max((abs(r["score"]) for r in rows), default=0.0) or 1.0
    return {
        "rows": [
            {
                **r,
                "score_text": display.fmt_score(r["score"]),
                "units_text": display.fmt_score(r["units"]),
                "events_text": display.fmt_int(r["events"]),
                "weight_text": display.fmt_score(r["weight"]),
                "share": round(100 * abs(r["score"]) / biggest, 1),
            }
            for r in rows
        ],
        "total": display.fmt_score(total),
        "events": display.fmt_int(sum(r["events"] for r in rows)),
    }


def _standing(s: selectors.Standing) -> dict[str, Any]:
    return {
        "ranked": s.rank is not None,
        "rank": f"#{display.fmt_int(s.rank)}" if s.rank is not None else display.DASH,
        "total": display.fmt_int(s.total),
        "score": display.fmt_score(s.score),
        "percentile": f"{s.percentile:g}" if s.percentile is not None else display.DASH,
    }


def _epoch_ms(moment: datetime) -> int:
    # Milliseconds, as the browser's Date holds times: both sides place points from the same numbers.
    return int(moment.timestamp() * 1000)


def video_page(request: HttpRequest, video_id: int) -> HttpResponse:
    if video_id > MAX_ID:
        return _not_found(request)
    now = timezone.now()
    try:
        video, standings = selectors.ranking_standings(video_id=video_id)
        breakdown = selectors.score_breakdown(video_id=video_id)
        activity = video_activity_hourly_cached(video_ids=[video_id], hours=CHART_HOURS, now=now)
        names = dict(category_list().values_list("slug", "name"))
        since = now - settings.RANKING_SNAPSHOT_RETENTION
        histories = [
            selectors.video_rank_history(video_id=video_id, window=RANK_WINDOW, category_slug=slug, since=since)
            for slug in (None, video["category"])
        ]
    except selectors.UnknownVideo:
        return _not_found(request)
    except (*REDIS_UNAVAILABLE, DatabaseError) as exc:
        logger.warning("video page unavailable: %s", exc)
        return _message(
            request, status=503, title="Temporarily unavailable", text="The rankings are unreachable; retry shortly."
        )
    by_window: dict[str, dict[str, selectors.Standing]] = {w: {} for w in WINDOWS}
    for standing in standings:
        by_window[standing.window][standing.scope] = standing
    start, _ = activity_range(hours=CHART_HOURS, now=now)
    series = activity.get(video_id, [0.0] * CHART_HOURS)
    context = {
        "video": video,
        "category_name": names.get(video["category"], video["category"]),
        "duration": display.fmt_duration(video["duration_seconds"]),
        "thumb": _thumb(request, video),
        "standings": [
            {
                "window": w,
                "label": display.WINDOW_LABELS[w],
                "global": _standing(by_window[w]["global"]),
                "category": _standing(by_window[w]["category"]),
            }
            for w in WINDOWS
        ],
        "breakdowns": [{"window": w, "label": display.WINDOW_LABELS[w], **_breakdown(breakdown[w])} for w in WINDOWS],
        "chart": display.activity_bars(series, start),
        "rank_chart": display.rank_chart(
            [[(_epoch_ms(p.taken_at), p.rank) for p in h.points] for h in histories],
            _epoch_ms(since),
            _epoch_ms(now),
        ),
        "rank_points": sum(len(h.points) for h in histories),
        "rank_window_label": display.WINDOW_LABELS[RANK_WINDOW],
        "retention_days": settings.RANKING_SNAPSHOT_RETENTION.days,
        "snapshot_minutes": f"{settings.RANKING_SNAPSHOT_INTERVAL_S / 60:g}",
        "config": {
            "videoId": video_id,
            "chartHours": CHART_HOURS,
            "pollMs": 2000,
            "chartRefreshMs": SPARK_REFRESH_MS,
            # New points appear once per snapshot; asking more often would mostly fetch the same week again.
            "rankRefreshMs": max(30, settings.RANKING_SNAPSHOT_INTERVAL_S) * 1000,
            "api": {
                "standing": reverse("rankings-video", args=[video_id]),
                "activity": reverse("videos-activity", args=[video_id]),
                "rankHistory": [
                    f"{reverse('rankings-history', args=[video_id])}?{urlencode(query)}"
                    for query in ({"window": RANK_WINDOW}, {"window": RANK_WINDOW, "category": video["category"]})
                ],
            },
        },
    }
    return render(request, "web/video.html", context)
