"""What a seed run makes: its flags (``SeedPlan``), its report (``SeedResult``) and the time
frame of the history (``Timeline``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from leaderboard.windows import epoch, hour_floor
from scoring.rebuild import RebuildResult

VIAS = ("db", "kafka", "api")
DEFAULT_API_URL = "http://127.0.0.1:8000/api/v1/events/"
MAX_API_BATCH = 1000  # the API's limit per request
API_AGE_MARGIN_S = 15 * 60  # keeps the oldest events inside the accepted age while a long run sends them


class SeedError(Exception):
    """The seed cannot go on (bad flags, API refusing events, Kafka not acknowledging)."""


@dataclass(frozen=True)
class SeedPlan:
    videos: int = 300
    users: int = 100
    events: int = 30_000
    days: int = 7
    seed: int = 42
    via: str = "db"
    batch: int = 500
    zipf: float = 1.1
    reset: bool = False
    url: str = DEFAULT_API_URL
    api_key: str | None = None
    now: datetime | None = None  # fixed in tests; the history ends at this moment


@dataclass
class SeedResult:
    via: str
    categories: int = 0
    users: int = 0
    videos: int = 0
    events: int = 0
    anonymous: int = 0
    counter_rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    rebuild: RebuildResult | None = None


def plan_check(*, plan: SeedPlan) -> None:
    """Refuse flags the pipeline could not honour, before anything is written."""
    if plan.via not in VIAS:
        raise SeedError(f"--via must be one of {', '.join(VIAS)}")
    if min(plan.videos, plan.users, plan.events) < 0 or plan.days < 1 or plan.batch < 1:
        raise SeedError("sizes must be >= 0, --days and --batch >= 1")
    if plan.via != "db" and plan.days > 7:
        raise SeedError("the pipeline refuses events older than 7 days: use --days 7 or less, or --via db")
    if plan.via == "api" and plan.batch > MAX_API_BATCH:
        raise SeedError(f"--batch is at most {MAX_API_BATCH} with --via api")
    if plan.zipf <= 0:
        raise SeedError("--zipf must be > 0")


@dataclass(frozen=True)
class Timeline:
    """Hour buckets of the history: bucket 0 is the oldest, the last one holds ``now``."""

    now: float
    start: int  # epoch of bucket 0
    hours: int
    floor: float  # no event before this moment

    @classmethod
    def ending(cls, *, now: datetime, days: int, age_margin_s: float) -> Timeline:
        hours = days * 24
        start = epoch(hour_floor(now)) - (hours - 1) * 3600
        floor = max(float(start), now.timestamp() - days * 86400 + age_margin_s)
        return cls(now=now.timestamp(), start=start, hours=hours, floor=floor)

    def span(self, hour: int) -> tuple[float, float]:
        lo = max(float(self.start + hour * 3600), self.floor)
        hi = min(float(self.start + (hour + 1) * 3600), self.now)
        return lo, max(hi, lo + 1.0)

    def bucket(self, moment: float) -> int:
        return int((moment - self.start) // 3600)
