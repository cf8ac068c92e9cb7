"""The demo catalogue: categories, users (video owners) and videos, drawn from a seed.

Everything is written through the catalogue's own services (``videos.services``): COPY
with ids taken ahead, so a million videos load in well under a minute.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.progress import Progress
from demo.plan import SeedError, Timeline
from demo.sampling import part_rng, zipf_cum
from videos.models import Video
from videos.selectors import owner_count, owner_ids, video_summaries
from videos.services import (
    OwnerLoad,
    VideoLoad,
    category_ensure,
    owner_ids_reserve,
    owners_bulk_load,
    video_ids_reserve,
    videos_bulk_load,
)

SEED_EMAIL_DOMAIN = "seed.example.org"  # marks seeded users, so --reset removes only them

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

FRESH_SHARE = 0.10  # videos published inside the history window: they rise in "trending"
HIDDEN_SHARE, REMOVED_SHARE = 0.02, 0.01
OWNER_ZIPF = 1.0  # a few creators own many videos


@dataclass(frozen=True)
class Catalog:
    """The videos that receive events, indexed by ordinal (0..n-1)."""

    ids: list[int]
    durations: list[int]
    first_hour: list[int]  # first hour bucket (0 = oldest) in which the video may get events
    statuses: list[str]


def categories_seed() -> list[int]:
    return [category_ensure(slug=slug, name=name, description=description) for slug, name, description, _ in CATEGORIES]


def users_seed(*, count: int, seed: int, joined_before: datetime, progress: Progress) -> list[int]:
    """Load ``count`` users (no usable password) and return the ids of every seeded user."""
    rng = part_rng(seed, "users")
    first = owner_count(email_domain=SEED_EMAIL_DOMAIN)
    ids = owner_ids_reserve(count=count)

    def owners() -> Iterator[OwnerLoad]:
        for n, uid in enumerate(ids, start=first):
            given, family = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            username = f"{given}.{family}{n}"
            joined = joined_before - timedelta(seconds=rng.randrange(365 * 86400))
            yield uid, username, given.title(), family.title(), f"{username}@{SEED_EMAIL_DOMAIN}", joined

    owners_bulk_load(owners=owners(), loaded=lambda done: progress("users", done, count))
    progress("users", count, count)
    return owner_ids(email_domain=SEED_EMAIL_DOMAIN)


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
    """Load ``count`` videos; a few were published inside the history, a few are hidden or removed.

    ``final_status=False`` stores every video as published (the API refuses events
    for unpublished videos); the caller applies ``Catalog.statuses`` afterwards.
    """
    if count and not owner_ids:
        raise SeedError("videos need owners: seed some users (--users)")
    rng = part_rng(seed, "videos")
    ids = video_ids_reserve(count=count)
    cat_cum = list(itertools.accumulate(share for *_, share in CATEGORIES[: len(category_ids)]))
    owner_cum = zipf_cum(len(owner_ids), OWNER_ZIPF)
    slugs = [slug for slug, *_ in CATEGORIES]
    latest = timeline.now - 120.0
    durations: list[int] = []
    first_hours: list[int] = []
    statuses: list[str] = []

    def videos() -> Iterator[VideoLoad]:
        # Draws in a fixed order per video: the same seed gives the same catalogue.
        for vid in ids:
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
            yield (vid, title, f"{title}. A {CATEGORIES[c][1].lower()} video.", category_ids[c], owner, duration,
                   f"https://picsum.photos/seed/video{vid}/480/270", moment,
                   status if final_status else Video.Status.PUBLISHED, moment, moment)  # fmt: skip
            durations.append(duration)
            first_hours.append(max(0, timeline.bucket(published) + 1))
            statuses.append(str(status))

    videos_bulk_load(videos=videos(), loaded=lambda done: progress("videos", done, count))
    progress("videos", count, count)
    return Catalog(ids=ids, durations=durations, first_hour=first_hours, statuses=statuses)


def catalog_existing(*, published_only: bool) -> Catalog:
    """Videos already in the database, for a run that adds events only (``--videos 0``)."""
    rows = video_summaries(published_only=published_only)
    return Catalog(
        ids=[r[0] for r in rows],
        durations=[r[1] for r in rows],
        first_hour=[0] * len(rows),
        statuses=[r[2] for r in rows],
    )
