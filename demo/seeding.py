"""Demo data for ``manage.py seed``: categories, users, videos and an engagement history.

One deterministic event stream (for a given ``seed`` and hour) feeds three sinks,
so the counters come out the same whichever way the events travel:

- ``db``: hourly counters written straight to Postgres with COPY, aggregated per
  (video, type, hour), then a full rankings rebuild. Millions of rows in minutes.
- ``kafka``: wire events produced to the events topic; the bridge and the
  workers count them like client traffic.
- ``api``: batches POSTed to ``/api/v1/events/``: the whole path, API key included.

The stream already obeys the pipeline's rules so that no path drops anything:
every event is younger than the oldest accepted age, a video gets events only
after the hour it was published, and a user's repeat of a deduplicated type
(a view within 30 minutes) goes to another user or is sent anonymously rather
than being sent twice. The counters therefore hold exactly ``events`` events.
"""

from __future__ import annotations

import bisect
import http.client
import io
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from events.models import ApiKey, EventType
from events.wire import WireEvent, event_units
from leaderboard import store
from leaderboard.windows import HOUR_WINDOW_MINUTES, epoch, hour_floor
from scoring.ledger import window_rollover
from scoring.rebuild import RebuildResult, rankings_rebuild
from videos.models import Category, Video

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int | None], None]

VIAS = ("db", "kafka", "api")
DEFAULT_API_URL = "http://127.0.0.1:8000/api/v1/events/"
SEED_EMAIL_DOMAIN = "seed.example.org"  # marks seeded users, so --reset removes only them
MAX_API_BATCH = 1000  # the API's limit per request
API_AGE_MARGIN_S = 15 * 60  # keeps the oldest events inside the accepted age while a long run sends them
COPY_CHUNK = 200_000

CATEGORIES: list[tuple[str, str, str, float]] = [
    # slug, name, description, share of the catalogue
    ("music", "Music", "Live sessions, covers, official videos and mixes.", 1.6),
    ("gaming", "Gaming", "Let's plays, speedruns, esports and reviews.", 1.5),
    ("comedy", "Comedy", "Sketches, stand-up and pranks.", 1.2),
    ("sports", "Sports", "Highlights, analysis and training.", 1.0),
    ("food", "Food & Cooking", "Recipes, street food and kitchen tips.", 0.9),
    ("education", "Education", "Lessons, explainers and study guides.", 0.8),
    ("science-tech", "Science & Technology", "Experiments, gadgets and how things work.", 0.8),
    ("news", "News & Politics", "Reports, interviews and debates.", 0.7),
]

SUBJECTS: dict[str, list[str]] = {
    "music": ["Acoustic Cover", "Live Session", "Official Video", "Remix", "Lo-fi Mix", "Drum Solo", "Piano Ballad"],
    "gaming": ["Speedrun", "Boss Fight", "Let's Play", "Esports Final", "Build Guide", "Game Review", "Hidden Ending"],
    "comedy": ["Sketch", "Stand-up Set", "Prank", "Improv Night", "Parody", "Roast", "Bloopers"],
    "sports": ["Match Highlights", "Goal Compilation", "Training Drill", "Tactical Breakdown", "Marathon", "Dunk"],
    "food": ["Ramen Recipe", "Street Food Tour", "Sourdough Guide", "Knife Skills", "Taco Night", "Vegan Curry"],
    "education": ["Calculus Lesson", "History Explainer", "Grammar Guide", "Exam Prep", "Chemistry Basics"],
    "science-tech": ["Rocket Launch", "Gadget Teardown", "Robot Build", "Physics Experiment", "Coding Tutorial"],
    "news": ["Morning Briefing", "Election Debate", "Interview", "Press Conference", "Weekly Roundup"],
}
ADJECTIVES = [
    "Epic",
    "Late-Night",
    "Ultimate",
    "Unplugged",
    "Quick",
    "Legendary",
    "Chill",
    "Insane",
    "Classic",
    "Daily",
]
SUFFIXES = ["", "", "", " (Full Version)", " in 4K", " - Part 2", " Highlights", " Explained", " | Behind the Scenes"]
FIRST_NAMES = [
    "ada",
    "ben",
    "chen",
    "dara",
    "eli",
    "fatima",
    "gus",
    "hana",
    "ivan",
    "june",
    "kofi",
    "lena",
    "mo",
    "nia",
]
LAST_NAMES = ["nguyen", "smith", "garcia", "kim", "okafor", "rossi", "silva", "patel", "muller", "haddad", "sato"]

# Share of each event type in the history; types the database lacks are skipped.
TYPE_MIX = {"view": 60.0, "watch": 24.0, "like": 10.0, "comment": 4.0, "share": 2.0}
# Relative traffic per UTC hour of day: quiet nights, an evening peak around 20:00.
DAILY_RHYTHM = [
    0.55, 0.45, 0.38, 0.33, 0.30, 0.32, 0.40, 0.52, 0.65, 0.75, 0.82, 0.88,
    0.94, 0.98, 1.00, 1.04, 1.10, 1.20, 1.35, 1.50, 1.60, 1.55, 1.30, 0.90,
]  # fmt: skip
WEEKEND_BOOST = 1.15
FRESH_SHARE = 0.10  # videos published inside the history window: they rise in "trending"
HIDDEN_SHARE, REMOVED_SHARE = 0.02, 0.01
USER_ZIPF = 0.7  # some users are far more active than others
OWNER_ZIPF = 1.0  # a few creators own many videos


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


@dataclass(frozen=True)
class Catalog:
    """The videos that receive events, indexed by ordinal (0..n-1)."""

    ids: list[int]
    durations: list[int]
    first_hour: list[int]  # first hour bucket (0 = oldest) in which the video may get events
    statuses: list[str]


@dataclass(frozen=True)
class EventKind:
    name: str
    id: int
    dedupe_window_s: int
    share: float


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


# An event of the stream: (video ordinal, kind index, epoch second, user ordinal or None, watch seconds or None).
SeedEvent = tuple[int, int, int, int | None, float | None]


# --- helpers -------------------------------------------------------------------


def _copy_text(value: object) -> str:
    """One field in COPY text format."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_rows(*, table: str, columns: Iterable[str], lines: list[str]) -> None:
    if not lines:
        return
    with connection.cursor() as cur:
        cur.cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO("".join(lines)))


def _ids_reserve(*, table: str, count: int) -> list[int]:
    """Take ``count`` ids from the table's sequence, so rows can be COPYed with known ids."""
    if count <= 0:
        return []
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)",
            [count],
        )
        return sorted(int(r[0]) for r in cur.fetchall())


def _zipf_cum(count: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` exactly (largest remainder), deterministically."""
    scale = sum(weights)
    if total <= 0 or scale <= 0:
        return [0] * len(weights)
    raw = [total * w / scale for w in weights]
    counts = [int(x) for x in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _rng(seed: int, part: str) -> random.Random:
    # One generator per part, so e.g. asking for more events leaves the catalogue unchanged.
    return random.Random(f"{seed}:{part}")


# --- reset and catalogue -------------------------------------------------------------


def seed_reset() -> None:
    """Wipe videos, counters, the batch ledger, dedupe keys, snapshots and seeded users.

    Sequences restart, so the same seed gives the same video ids and counters.
    Categories, event types, staff users and API keys stay.
    """
    with transaction.atomic(), connection.cursor() as cur:
        # Deferred foreign-key checks still pending in an enclosing transaction would block TRUNCATE.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(
            "TRUNCATE videos_video, scoring_hourlycounter, scoring_minutecounter, scoring_seenevent, scoring_batch, scoring_deadletter, "
            "rankings_rankingsnapshot RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "DELETE FROM auth_user WHERE email LIKE %s AND NOT is_staff AND NOT is_superuser",
            [f"%@{SEED_EMAIL_DOMAIN}"],
        )
    store.projection_clear()


def categories_seed() -> list[int]:
    ids = []
    for slug, name, description, _ in CATEGORIES:
        category, _created = Category.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description}
        )
        ids.append(category.id)
    return ids


def users_seed(*, count: int, seed: int, joined_before: datetime, progress: Progress) -> list[int]:
    """COPY ``count`` users (no usable password) and return the ids of every seeded user."""
    rng = _rng(seed, "users")
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM auth_user WHERE email LIKE %s", [f"%@{SEED_EMAIL_DOMAIN}"])
        first = int(cur.fetchone()[0])
    ids = _ids_reserve(table="auth_user", count=count)
    lines: list[str] = []
    columns = ("id", "password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
               "is_active", "date_joined")  # fmt: skip
    for n, uid in enumerate(ids, start=first):
        given, family = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username = f"{given}.{family}{n}"
        joined = joined_before - timedelta(seconds=rng.randrange(365 * 86400))
        row = (uid, "!seeded", False, username, given.title(), family.title(), f"{username}@{SEED_EMAIL_DOMAIN}",
               False, True, joined)  # fmt: skip
        lines.append("\t".join(_copy_text(v) for v in row) + "\n")
        if len(lines) >= COPY_CHUNK:
            _copy_rows(table="auth_user", columns=columns, lines=lines)
            progress("users", n - first + 1, count)
            lines = []
    _copy_rows(table="auth_user", columns=columns, lines=lines)
    progress("users", count, count)
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM auth_user WHERE email LIKE %s ORDER BY id", [f"%@{SEED_EMAIL_DOMAIN}"])
        return [int(r[0]) for r in cur.fetchall()]


def videos_seed(
    *,
    count: int,
    seed: int,
    category_ids: list[int],
    owner_ids: list[int],
    timeline: Timeline,
    final_status: bool,
    progress: Progress,
) -> Catalog:
    """COPY ``count`` videos; a few were published inside the history, a few are hidden or removed.

    ``final_status=False`` stores every video as published (the API refuses events
    for unpublished videos); the caller applies ``Catalog.statuses`` afterwards.
    """
    if count and not owner_ids:
        raise SeedError("videos need owners: seed some users (--users)")
    rng = _rng(seed, "videos")
    ids = _ids_reserve(table="videos_video", count=count)
    cat_cum = list(itertools.accumulate(share for *_, share in CATEGORIES[: len(category_ids)]))
    owner_cum = _zipf_cum(len(owner_ids), OWNER_ZIPF)
    slugs = [slug for slug, *_ in CATEGORIES]
    latest = timeline.now - 120.0
    durations, first_hours, statuses = [], [], []
    columns = ("id", "title", "description", "category_id", "owner_id", "duration_seconds", "thumbnail_url",
               "published_at", "status", "created_at", "updated_at")  # fmt: skip
    lines: list[str] = []
    for n, vid in enumerate(ids):
        c = bisect.bisect(cat_cum, rng.random() * cat_cum[-1])
        owner = owner_ids[bisect.bisect(owner_cum, rng.random() * owner_cum[-1])]
        title = f"{rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS[slugs[c]])}{rng.choice(SUFFIXES)}"
        duration = int(min(4 * 3600, max(15.0, rng.lognormvariate(5.3, 0.9))))
        if rng.random() < FRESH_SHARE:
            published = timeline.start + rng.random() * (latest - timeline.start)
        else:
            published = timeline.start - rng.random() * 90 * 86400
        roll = rng.random()
        status = Video.Status.HIDDEN if roll < HIDDEN_SHARE else Video.Status.PUBLISHED
        if HIDDEN_SHARE <= roll < HIDDEN_SHARE + REMOVED_SHARE:
            status = Video.Status.REMOVED
        # created = updated = publication: a rebuild right after must not take these rows for fresh edits.
        moment = datetime.fromtimestamp(published, tz=UTC)
        row = (vid, title, f"{title}. A {CATEGORIES[c][1].lower()} video.", category_ids[c], owner, duration,
               f"https://picsum.photos/seed/video{vid}/480/270", moment,
               status if final_status else Video.Status.PUBLISHED, moment, moment)  # fmt: skip
        lines.append("\t".join(_copy_text(v) for v in row) + "\n")
        durations.append(duration)
        first_hours.append(max(0, timeline.bucket(published) + 1))
        statuses.append(str(status))
        if len(lines) >= COPY_CHUNK:
            _copy_rows(table="videos_video", columns=columns, lines=lines)
            progress("videos", n + 1, count)
            lines = []
    _copy_rows(table="videos_video", columns=columns, lines=lines)
    progress("videos", count, count)
    return Catalog(ids=ids, durations=durations, first_hour=first_hours, statuses=statuses)


def catalog_existing(*, published_only: bool) -> Catalog:
    """Videos already in the database, for a run that adds events only (``--videos 0``)."""
    sql = "SELECT id, duration_seconds, status FROM videos_video"
    if published_only:
        sql += " WHERE status = 'published'"
    with connection.cursor() as cur:
        cur.execute(sql + " ORDER BY id")
        rows = cur.fetchall()
    return Catalog(
        ids=[r[0] for r in rows],
        durations=[r[1] for r in rows],
        first_hour=[0] * len(rows),
        statuses=[r[2] for r in rows],
    )


def event_kinds() -> list[EventKind]:
    kinds = [
        EventKind(name=t.name, id=t.id, dedupe_window_s=t.dedupe_window_seconds, share=TYPE_MIX[t.name])
        for t in EventType.objects.filter(name__in=list(TYPE_MIX)).order_by("name")
    ]
    if not kinds:
        raise SeedError(f"no event types among {sorted(TYPE_MIX)}: run migrations first")
    return kinds


# --- the event stream -------------------------------------------------------------


def event_history_generate(
    *, catalog: Catalog, users: int, kinds: list[EventKind], timeline: Timeline, total: int, seed: int, zipf: float
) -> Iterator[tuple[int, list[SeedEvent]]]:
    """Yield (hour bucket, events) from the oldest hour to the current one.

    Video popularity follows Zipf(``zipf``) over a seeded random order of the
    catalogue; hourly volume follows DAILY_RHYTHM; users are Zipf(USER_ZIPF) active.
    """
    if not catalog.ids or total <= 0:
        return
    rng = _rng(seed, "events")
    by_rank = list(range(len(catalog.ids)))
    rng.shuffle(by_rank)
    video_cum = _zipf_cum(len(by_rank), zipf)
    kind_cum = list(itertools.accumulate(k.share for k in kinds))
    kind_range = range(len(kinds))
    user_range = range(users)
    user_cum = _zipf_cum(users, USER_ZIPF) if users else []
    windows = [k.dedupe_window_s for k in kinds]
    watch = next((i for i, k in enumerate(kinds) if k.name == "watch"), -1)

    weights = []
    for hour in range(timeline.hours):
        lo, hi = timeline.span(hour)
        moment = datetime.fromtimestamp(lo, tz=UTC)
        boost = WEEKEND_BOOST if moment.weekday() >= 5 else 1.0
        weights.append(DAILY_RHYTHM[moment.hour] * boost * (hi - lo) / 3600)
    counts = _allocate(total, weights)

    first_hour, durations = catalog.first_hour, catalog.durations
    choices, rand = rng.choices, rng.random
    seen: set[tuple[int, int, int, int]] = set()
    for hour, n in enumerate(counts):
        if n == 0:
            continue
        lo, hi = timeline.span(hour)
        width = hi - lo
        videos = choices(by_rank, cum_weights=video_cum, k=n)
        types = choices(kind_range, cum_weights=kind_cum, k=n)
        who: list[int] | None = choices(user_range, cum_weights=user_cum, k=n) if users else None
        out: list[SeedEvent] = []
        for i in range(n):
            video = videos[i]
            tries = 0
            while first_hour[video] > hour and tries < 20:  # not published yet: someone else's video
                video = choices(by_rank, cum_weights=video_cum)[0]
                tries += 1
            kind = types[i]
            at = int(lo + rand() * width)
            user = who[i] if who is not None else None
            window = windows[kind]
            if window and user is not None:
                key = (user, video, kind, at // window)
                for _ in range(3):
                    if key not in seen:
                        break
                    user = choices(user_range, cum_weights=user_cum)[0]
                    key = (user, video, kind, at // window)
                if key in seen:
                    user = None  # every active user already counted here: an anonymous viewer
                else:
                    seen.add(key)
            seconds = None
            if kind == watch:
                duration = durations[video]
                seconds = max(1.0, round(duration * min(1.0, 1.15 * rand() ** 0.8), 1))
            out.append((video, kind, at, user, seconds))
        yield hour, out
        horizon = lo + 3600
        seen = {key for key in seen if (key[3] + 1) * windows[key[2]] > horizon}


# --- sinks ---------------------------------------------------------------------------


def _units(event: SeedEvent, kinds: list[EventKind], durations: list[int]) -> float:
    return event_units(event_type=kinds[event[1]].name, watch_seconds=event[4], duration_seconds=durations[event[0]])


def counters_write(
    *,
    stream: Iterable[tuple[int, list[SeedEvent]]],
    catalog: Catalog,
    kinds: list[EventKind],
    timeline: Timeline,
    total: int,
    progress: Progress,
) -> tuple[int, int]:
    """COPY the stream, aggregated per (video, type, hour), into a temp table, then upsert the counters.

    Returns (events, counter rows). Must run inside a transaction (the temp table drops on commit).
    """
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE seed_counters (video_id bigint, event_type_id bigint, hour timestamptz, "
            "events bigint, units float8, trend_units float8) ON COMMIT DROP"
        )
    columns = ("video_id", "event_type_id", "hour", "events", "units", "trend_units")
    ids, durations = catalog.ids, catalog.durations
    type_ids = [k.id for k in kinds]
    half_life = settings.RANKING_TRENDING_HALF_LIFE_S
    # Minute buckets the hour window may still hold (the live path keeps those as minute counters too).
    recent = int(timeline.now) // 60 * 60 - HOUR_WINDOW_MINUTES * 60
    minute_slots: dict[tuple[int, int, int], list[float]] = {}
    lines: list[str] = []
    done = rows = 0
    progress("events", 0, total)
    for hour, events in stream:
        hour_start = timeline.start + hour * 3600
        stamp = datetime.fromtimestamp(hour_start, tz=UTC).isoformat()
        slots: dict[tuple[int, int], list[float]] = {}
        for event in events:
            slot = slots.get((event[0], event[1]))
            if slot is None:
                slot = slots[(event[0], event[1])] = [0, 0.0, 0.0]
            units = _units(event, kinds, durations)
            minute = event[2] // 60 * 60
            slot[0] += 1
            slot[1] += units
            # The same rule as scoring.counting: trending's minute offset inside the hour.
            slot[2] += units * 2.0 ** ((minute - hour_start) / half_life)
            if minute >= recent:
                recent_slot = minute_slots.setdefault((ids[event[0]], type_ids[event[1]], minute), [0, 0.0])
                recent_slot[0] += 1
                recent_slot[1] += units
        for (video, kind), (n, units, trend_units) in slots.items():
            lines.append(f"{ids[video]}\t{type_ids[kind]}\t{stamp}\t{int(n)}\t{units!r}\t{trend_units!r}\n")
        rows += len(slots)
        done += len(events)
        if len(lines) >= COPY_CHUNK:
            _copy_rows(table="seed_counters", columns=columns, lines=lines)
            lines = []
        progress("events", done, total)
    _copy_rows(table="seed_counters", columns=columns, lines=lines)
    progress("counters", 0, None)
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO scoring_hourlycounter (video_id, event_type_id, hour, events, units, trend_units)
            SELECT video_id, event_type_id, hour, events, units, trend_units FROM seed_counters
            ON CONFLICT (video_id, event_type_id, hour) DO UPDATE
            SET events = scoring_hourlycounter.events + EXCLUDED.events,
                units = scoring_hourlycounter.units + EXCLUDED.units,
                trend_units = scoring_hourlycounter.trend_units + EXCLUDED.trend_units
            """
        )
        keys = sorted(minute_slots)
        cur.execute(
            """
            INSERT INTO scoring_minutecounter (video_id, event_type_id, minute, events, units)
            SELECT v, t, to_timestamp(m), e, u
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::float8[]) AS r(v, t, m, e, u)
            ON CONFLICT (video_id, event_type_id, minute) DO UPDATE
            SET events = scoring_minutecounter.events + EXCLUDED.events,
                units = scoring_minutecounter.units + EXCLUDED.units
            """,
            [
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [int(minute_slots[k][0]) for k in keys],
                [float(minute_slots[k][1]) for k in keys],
            ],
        )
        # Dropped now, not at commit: an enclosing transaction may seed again before it ends.
        cur.execute("DROP TABLE seed_counters")
    progress("counters", rows, rows)
    return done, rows


def _wire(event: SeedEvent, catalog: Catalog, user_ids: list[int], kinds: list[EventKind]) -> WireEvent:
    user = event[3]
    return WireEvent(
        event_id=uuid.uuid4(),
        video_id=catalog.ids[event[0]],
        type=kinds[event[1]].name,
        occurred_at=datetime.fromtimestamp(event[2], tz=UTC),
        user_id=str(user_ids[user]) if user is not None else None,
        watch_seconds=event[4],
    )


def events_produce_kafka(
    *,
    stream: Iterable[tuple[int, list[SeedEvent]]],
    catalog: Catalog,
    user_ids: list[int],
    kinds: list[EventKind],
    total: int,
    flush_every: int,
    progress: Progress,
) -> int:
    """Produce the stream to the events topic (key = video id, acks=all), flushing every ``flush_every``."""
    from core.kafka import producer_create, topic_ensure

    topic_ensure()
    # Bulk tuning: bigger batches than the API's, which answers each request as soon as it can.
    producer = producer_create(
        linger_ms=10, batch_size=512 * 1024, max_block_ms=60_000, request_timeout_ms=60_000, delivery_timeout_ms=120_000
    )
    errors: list[BaseException] = []
    sent = 0
    progress("events", 0, total)
    try:
        for _, events in stream:
            for event in events:
                wire = _wire(event, catalog, user_ids, kinds)
                future = producer.send(settings.KAFKA_TOPIC, key=str(wire.video_id).encode(), value=wire.to_json())
                future.add_errback(errors.append)
                sent += 1
                if sent % flush_every == 0:
                    producer.flush(timeout=60)
                    if errors:
                        raise SeedError(f"Kafka did not acknowledge events: {errors[0]!r}")
                    progress("events", sent, total)
        producer.flush(timeout=60)
        if errors:
            raise SeedError(f"Kafka did not acknowledge events: {errors[0]!r}")
    finally:
        producer.close(timeout=10)
    progress("events", sent, total)
    return sent


class _ApiClient:
    """POSTs event batches over one keep-alive connection; retries what the server asks to retry."""

    RETRIES = 8

    def __init__(self, *, url: str, api_key: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SeedError(f"--url must be an http:// URL, not {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {api_key}"}
        self.conn: http.client.HTTPConnection | None = None

    def post(self, events: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": events}).encode()
        for attempt in range(self.RETRIES):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request("POST", self.path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == self.RETRIES - 1:
                    raise SeedError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
                time.sleep(min(0.5 * 2**attempt, 10.0))
                continue
            if response.status in (200, 201, 202):
                return
            if response.status in (429, 502, 503, 504) and attempt < self.RETRIES - 1:
                # Same event ids on retry: the pipeline counts them once.
                wait = response.getheader("Retry-After")
                time.sleep(float(wait) if wait and wait.replace(".", "", 1).isdigit() else min(0.5 * 2**attempt, 10.0))
                continue
            raise SeedError(f"API answered {response.status}: {text[:500].decode(errors='replace')}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def events_post_api(
    *,
    stream: Iterable[tuple[int, list[SeedEvent]]],
    catalog: Catalog,
    user_ids: list[int],
    kinds: list[EventKind],
    total: int,
    url: str,
    api_key: str,
    batch: int,
    progress: Progress,
) -> int:
    client = _ApiClient(url=url, api_key=api_key)
    pending: list[dict[str, Any]] = []
    sent = 0
    progress("events", 0, total)
    try:
        for _, events in stream:
            for event in events:
                pending.append(json.loads(_wire(event, catalog, user_ids, kinds).to_json()))
                if len(pending) >= batch:
                    client.post(pending)
                    sent += len(pending)
                    pending = []
                    progress("events", sent, total)
        if pending:
            client.post(pending)
            sent += len(pending)
    finally:
        client.close()
    progress("events", sent, total)
    return sent


# --- the whole seed ------------------------------------------------------------------


def _plan_check(plan: SeedPlan) -> None:
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


def data_seed(*, plan: SeedPlan, progress: Progress | None = None) -> SeedResult:
    """Create the catalogue and its event history as ``plan`` says; rankings are rebuilt or fed live."""
    _plan_check(plan)
    report: Progress = progress or (lambda stage, done, total: None)
    result = SeedResult(via=plan.via)
    now = plan.now or timezone.now()
    # The same margin on every path, so that one --seed gives one history whichever way it is written.
    margin = API_AGE_MARGIN_S
    timeline = Timeline.ending(now=now, days=plan.days, age_margin_s=margin)
    kinds = event_kinds()

    if plan.reset:
        started = time.monotonic()
        seed_reset()
        result.seconds["reset"] = time.monotonic() - started
    started = time.monotonic()
    with transaction.atomic():
        category_ids = categories_seed()
        user_ids = users_seed(count=plan.users, seed=plan.seed, joined_before=now, progress=report)
        catalog = videos_seed(
            count=plan.videos,
            seed=plan.seed,
            category_ids=category_ids,
            owner_ids=user_ids,
            timeline=timeline,
            final_status=plan.via != "api",
            progress=report,
        )
        if not catalog.ids:
            catalog = catalog_existing(published_only=plan.via == "api")
        if plan.events and not catalog.ids:
            raise SeedError("no videos to send events to: add some with --videos")
        result.categories, result.users, result.videos = len(category_ids), plan.users, plan.videos
        result.seconds["catalog"] = time.monotonic() - started

        stream = event_history_generate(
            catalog=catalog,
            users=len(user_ids),
            kinds=kinds,
            timeline=timeline,
            total=plan.events,
            seed=plan.seed,
            zipf=plan.zipf,
        )
        stream = _count_anonymous(stream, result)
        if plan.via == "db":
            started = time.monotonic()
            result.events, result.counter_rows = counters_write(
                stream=stream, catalog=catalog, kinds=kinds, timeline=timeline, total=plan.events, progress=report
            )
            result.seconds["events"] = time.monotonic() - started

    started = time.monotonic()
    with connection.cursor() as cur:
        # Fresh planner statistics after a bulk load: without them the rebuild's aggregate
        # over the counters can pick a plan many times slower.
        cur.execute("ANALYZE auth_user, videos_video, scoring_hourlycounter")
    result.seconds["analyze"] = time.monotonic() - started

    # Other paths need the new videos in the metadata cache before their first event.
    started = time.monotonic()
    window_rollover()
    result.rebuild = rankings_rebuild(progress=report)
    result.seconds["rebuild"] = time.monotonic() - started
    if plan.via == "db":
        return result

    started = time.monotonic()
    if plan.via == "kafka":
        result.events = events_produce_kafka(
            stream=stream,
            catalog=catalog,
            user_ids=user_ids,
            kinds=kinds,
            total=plan.events,
            flush_every=plan.batch,
            progress=report,
        )
    else:
        result.events = _api_seed(
            plan=plan, stream=stream, catalog=catalog, user_ids=user_ids, kinds=kinds, report=report
        )
    result.seconds["events"] = time.monotonic() - started
    return result


def _api_seed(
    *,
    plan: SeedPlan,
    stream: Iterable[tuple[int, list[SeedEvent]]],
    catalog: Catalog,
    user_ids: list[int],
    kinds: list[EventKind],
    report: Progress,
) -> int:
    key_obj = None
    api_key = plan.api_key
    if api_key is None:
        from events.ingest import api_key_create

        key_obj, api_key = api_key_create(name="seed")
    try:
        sent = events_post_api(
            stream=stream,
            catalog=catalog,
            user_ids=user_ids,
            kinds=kinds,
            total=plan.events,
            url=plan.url,
            api_key=api_key,
            batch=plan.batch,
            progress=report,
        )
    finally:
        if key_obj is not None:  # a key made for this run only
            ApiKey.objects.filter(pk=key_obj.pk).update(revoked=True)
    # The API accepts events for published videos only: hide and remove once the history is in.
    from videos.services import video_bulk_set_status

    for status in (Video.Status.HIDDEN, Video.Status.REMOVED):
        chosen = [vid for vid, s in zip(catalog.ids, catalog.statuses, strict=True) if s == status]
        if chosen and plan.videos:
            video_bulk_set_status(video_ids=chosen, status=status)
    return sent


def _count_anonymous(
    stream: Iterator[tuple[int, list[SeedEvent]]], result: SeedResult
) -> Iterator[tuple[int, list[SeedEvent]]]:
    for hour, events in stream:
        result.anonymous += sum(1 for e in events if e[3] is None)
        yield hour, events
