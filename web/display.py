"""How the pages show things: numbers, movement, thumbnails, sparklines, bars.

web/static/web/js/common.js does the same for the rows the browser draws when
updates arrive; keep the two in step, or a row changes look on its first update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

WINDOW_LABELS: dict[str, str] = {
    "hour": "Last hour",
    "day": "Last 24 hours",
    "week": "Last 7 days",
    "all": "All time",
    "trending": "Trending",
    "rising": "Rising",
}

SPARK_W, SPARK_H, SPARK_PAD = 120, 32, 2.0
DASH = "\u2013"  # en dash: "no value", lighter than a hyphen in a column of numbers
CHART_W, CHART_H, CHART_TOP, CHART_BOTTOM = 840, 180, 16, 22


def fmt_score(value: float | None) -> str:
    """1,234.5 / 1,234 / -3: at most one decimal, thousands separated."""
    if value is None:
        return DASH
    # Half away from zero on the exact value of the float, as the browser's Intl.NumberFormat
    # rounds: f-strings round half to even, and a row would change on its first update.
    text = f"{Decimal(value).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP):,.1f}"
    text = text.removesuffix(".0")
    return "0" if text == "-0" else text


def fmt_int(value: int) -> str:
    return f"{value:,}"


def fmt_duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class Movement:
    kind: str  # up, down, same, new, none
    label: str
    title: str


def movement(rank: int, previous_rank: int | None, *, has_snapshot: bool) -> Movement:
    """Arrow against the last rank snapshot. Before the first snapshot nothing is "new"."""
    if not has_snapshot:
        return Movement("none", DASH, "No earlier snapshot yet")
    if previous_rank is None:
        return Movement("new", "NEW", "New in the top positions since the last snapshot")
    if previous_rank > rank:
        return Movement("up", f"▲ {previous_rank - rank}", f"Up from #{previous_rank}")
    if previous_rank < rank:
        return Movement("down", f"▼ {rank - previous_rank}", f"Down from #{previous_rank}")
    return Movement("same", DASH, f"Unchanged at #{rank}")


def initials(title: str) -> str:
    words = [w for w in title.split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def placeholder_hue(video_id: int) -> int:
    # Stable per video; neighbouring ids land far apart on the colour wheel (137 degrees, near the golden angle).
    return (video_id * 137) % 360


def same_origin_url(url: str, *, scheme: str, host: str) -> str | None:
    """The URL when it points at this site, else None.

    Thumbnails elsewhere are never loaded: the page must work offline and must not make
    viewers' browsers call hosts nobody vetted; a coloured placeholder stands in.
    """
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc and url.startswith("/"):
        return url
    if parts.scheme == scheme and parts.netloc == host:
        return url
    return None


def sparkline(values: Sequence[float]) -> dict[str, str]:
    """SVG points of a line and the area under it, the zero line at the bottom unless scores go negative."""
    if not values:
        return {"line": "", "area": "", "cx": "", "cy": ""}
    lo, hi = min(0.0, *values), max(0.0, *values)
    span = hi - lo or 1.0
    step = (SPARK_W - 2 * SPARK_PAD) / max(len(values) - 1, 1)
    points = [
        (SPARK_PAD + i * step, SPARK_H - SPARK_PAD - (v - lo) / span * (SPARK_H - 2 * SPARK_PAD))
        for i, v in enumerate(values)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    base = SPARK_H - SPARK_PAD - (0 - lo) / span * (SPARK_H - 2 * SPARK_PAD)
    area = f"M{points[0][0]:.1f},{base:.1f} L{line.replace(' ', ' L')} L{points[-1][0]:.1f},{base:.1f} Z"
    return {"line": line, "area": area, "cx": f"{points[-1][0]:.1f}", "cy": f"{points[-1][1]:.1f}"}


def activity_bars(values: Sequence[float], start: datetime) -> dict[str, Any]:
    """Bars of an hourly series and a tick at each UTC midnight, in a CHART_W x CHART_H box."""
    n = max(len(values), 1)
    lo, hi = min(0.0, *values, 0.0), max(0.0, *values, 0.0)
    span = hi - lo or 1.0
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM
    zero = CHART_TOP + hi / span * plot_h
    slot = CHART_W / n
    bars = []
    ticks = []
    for i, v in enumerate(values):
        hour = start + timedelta(hours=i)
        top = CHART_TOP + (hi - max(v, 0.0)) / span * plot_h
        height = abs(v) / span * plot_h
        bars.append(
            {
                "x": f"{i * slot + 0.5:.2f}",
                "y": f"{top:.2f}",
                "w": f"{max(slot - 1, 1):.2f}",
                "h": f"{height:.2f}",
                "negative": v < 0,
                "title": f"{hour:%a %d %b %H:00} UTC: score {fmt_score(v)}",
            }
        )
        if hour.hour == 0:
            ticks.append({"x": f"{i * slot:.2f}", "label": f"{hour:%a %d}"})
    return {
        "bars": bars,
        "ticks": ticks,
        "zero": f"{zero:.2f}",
        "max_label": fmt_score(hi),
        "width": CHART_W,
        "height": CHART_H,
        "top": CHART_TOP,
        "label_y": CHART_H - 6,
        "total": fmt_score(sum(values)),
    }


def _fixed2(value: float) -> str:
    """``value.toFixed(2)`` of the browser: halves round up on the float's exact value (f-strings round to even)."""
    return f"{Decimal(value).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"


RANK_FLOOR = 10  # the rank axis spans at least #1..#10, so a video at #1 and #2 does not swing across the chart


def rank_chart(series: Sequence[Sequence[tuple[float, int | None]]], start_ms: float, end_ms: float) -> dict[str, Any]:
    """Rank over time in a CHART_W x CHART_H box, #1 at the top: one SVG path per series of
    (epoch milliseconds, rank or None) points, broken where the rank is None (not in the
    snapshot's top positions). x is proportional to time, so a missed snapshot leaves a gap too.
    common.js rankChart computes the same strings in the same order of operations."""
    ranks = [rank for points in series for _, rank in points if rank is not None]
    worst = max(RANK_FLOOR, *ranks) if ranks else RANK_FLOOR
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM
    span = end_ms - start_ms or 1.0
    paths = []
    for points in series:
        parts: list[str] = []
        pen_down = False
        for t, rank in points:
            if rank is None:
                pen_down = False
                continue
            x = (t - start_ms) / span * CHART_W
            y = CHART_TOP + (rank - 1) / (worst - 1) * plot_h
            # A segment starts with a zero-length line: drawn with round caps, a lone point shows as a dot.
            parts.append(f"L{_fixed2(x)},{_fixed2(y)}" if pen_down else f"M{_fixed2(x)},{_fixed2(y)}h0")
            pen_down = True
        paths.append(" ".join(parts))
    ticks = []
    day_ms = 86_400_000
    midnight = (start_ms // day_ms + 1) * day_ms
    while midnight < end_ms:
        day = datetime.fromtimestamp(midnight / 1000, tz=UTC)
        ticks.append({"x": _fixed2((midnight - start_ms) / span * CHART_W), "label": f"{day:%a %d}"})
        midnight += day_ms
    return {
        "paths": paths,
        "ticks": ticks,
        "worst": f"#{worst}",
        "width": CHART_W,
        "height": CHART_H,
        "top": CHART_TOP,
        "bottom": CHART_H - CHART_BOTTOM,
        "label_y": CHART_H - 6,
    }
