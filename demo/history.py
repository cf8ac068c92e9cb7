"""The engagement history: one deterministic stream of events, hour by hour.

The stream already obeys the pipeline's rules so that no path drops anything:
every event is younger than the oldest accepted age, a video gets events only
after the hour it was published, and a user's repeat of a deduplicated type
(a view within 30 minutes) goes to another user or is sent anonymously rather
than being sent twice. Whichever sink writes it, the counters hold exactly the
events asked for.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from demo.catalogue import Catalog
from demo.plan import SeedError, Timeline
from demo.sampling import allocate, part_rng, zipf_cum
from events.selectors import event_types_by_name
from events.wire import WireEvent

# Share of each event type in the history; types the database lacks are skipped.
TYPE_MIX = {"view": 60.0, "watch": 24.0, "like": 10.0, "comment": 4.0, "share": 2.0}
# Relative traffic per UTC hour of day: quiet nights, an evening peak around 20:00.
DAILY_RHYTHM = [
    0.55, 0.45, 0.38, 0.33, 0.30, 0.32, 0.40, 0.52, 0.65, 0.75, 0.82, 0.88,
    0.94, 0.98, 1.00, 1.04, 1.10, 1.20, 1.35, 1.50, 1.60, 1.55, 1.30, 0.90,
]  # fmt: skip
WEEKEND_BOOST = 1.15
USER_ZIPF = 0.7  # some users are far more active than others


@dataclass(frozen=True)
class EventKind:
    name: str
    id: int
    dedupe_window_s: int
    share: float


# An event of the stream: (video ordinal, kind index, epoch second, user ordinal or None, watch seconds or None).
SeedEvent = tuple[int, int, int, int | None, float | None]
# The stream: (hour bucket, its events), oldest hour first.
History = Iterator[tuple[int, list[SeedEvent]]]


def event_kinds() -> list[EventKind]:
    """The event types of TYPE_MIX that exist, by name."""
    types = event_types_by_name()
    kinds = [
        EventKind(name=t.name, id=t.id, dedupe_window_s=t.dedupe_window_seconds, share=TYPE_MIX[t.name])
        for name, t in sorted(types.items())
        if name in TYPE_MIX
    ]
    if not kinds:
        raise SeedError(f"no event types among {sorted(TYPE_MIX)}: run migrations first")
    return kinds


def event_history_generate(
    *, catalog: Catalog, users: int, kinds: list[EventKind], timeline: Timeline, total: int, seed: int, zipf: float
) -> History:
    """Yield (hour bucket, events) from the oldest hour to the current one.

    Video popularity follows Zipf(``zipf``) over a seeded random order of the
    catalogue; hourly volume follows DAILY_RHYTHM; users are Zipf(USER_ZIPF) active.
    """
    if not catalog.ids or total <= 0:
        return
    rng = part_rng(seed, "events")
    by_rank = list(range(len(catalog.ids)))
    rng.shuffle(by_rank)
    video_cum = zipf_cum(len(by_rank), zipf)
    kind_cum = list(itertools.accumulate(k.share for k in kinds))
    kind_range = range(len(kinds))
    user_range = range(users)
    user_cum = zipf_cum(users, USER_ZIPF) if users else []
    windows = [k.dedupe_window_s for k in kinds]
    watch = next((i for i, k in enumerate(kinds) if k.name == "watch"), -1)

    weights = []
    for hour in range(timeline.hours):
        lo, hi = timeline.span(hour)
        moment = datetime.fromtimestamp(lo, tz=UTC)
        boost = WEEKEND_BOOST if moment.weekday() >= 5 else 1.0
        weights.append(DAILY_RHYTHM[moment.hour] * boost * (hi - lo) / 3600)
    counts = allocate(total, weights)

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


def event_wire(event: SeedEvent, *, catalog: Catalog, user_ids: list[int], kinds: list[EventKind]) -> WireEvent:
    """The event as a client would send it (a fresh event id: the pipeline dedupes on it)."""
    user = event[3]
    return WireEvent(
        event_id=str(uuid.uuid4()),
        video_id=catalog.ids[event[0]],
        type=kinds[event[1]].name,
        occurred_at=datetime.fromtimestamp(event[2], tz=UTC),
        user_id=str(user_ids[user]) if user is not None else None,
        watch_seconds=event[4],
    )
