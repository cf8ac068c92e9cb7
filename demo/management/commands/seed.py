"""Seed demo data: categories, users, videos and a week of engagement (see demo/seeding.py and the modules it uses)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.progress import StageBars
from demo.plan import DEFAULT_API_URL, VIAS, SeedError, SeedPlan
from demo.seeding import data_seed
from leaderboard.windows import WINDOWS


class Command(BaseCommand):
    help = "Create categories, users, videos and an event history (Zipf popularity, daily rhythm)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--videos", type=int, default=300, help="videos to create (0: use existing ones)")
        parser.add_argument("--users", type=int, default=100, help="users to create")
        parser.add_argument("--events", type=int, default=30_000, help="events in the history")
        parser.add_argument("--days", type=int, default=7, help="length of the history (at most 7 unless --via db)")
        parser.add_argument("--seed", type=int, default=42, help="random seed: same seed, same data")
        parser.add_argument("--via", choices=VIAS, default="db", help="write counters directly, or send events")
        parser.add_argument("--batch", type=int, default=500, help="events per API request / Kafka flush")
        parser.add_argument("--zipf", type=float, default=1.1, help="popularity exponent (higher: steeper)")
        parser.add_argument("--reset", action="store_true", help="wipe videos, counters and seeded users first")
        parser.add_argument("--url", default=DEFAULT_API_URL, help="events endpoint for --via api")
        parser.add_argument("--api-key", default=None, help="ingestion key for --via api (default: a new one)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **opts: Any) -> None:
        plan = SeedPlan(
            videos=opts["videos"],
            users=opts["users"],
            events=opts["events"],
            days=opts["days"],
            seed=opts["seed"],
            via=opts["via"],
            batch=opts["batch"],
            zipf=opts["zipf"],
            reset=opts["reset"],
            url=opts["url"],
            api_key=opts["api_key"],
        )
        bars = StageBars(
            units={
                "users": "user",
                "videos": "video",
                "events": "ev",
                "counters": "row",
                "metadata": "video",
                "scores": "video",
            },
            enabled=False if opts["no_progress"] else None,
        )
        try:
            result = data_seed(plan=plan, progress=bars)
        except SeedError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bars.close()
        timing = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in result.seconds.items())
        self.stdout.write(
            f"seeded via {result.via}: {result.categories} categories, {result.users} users, "
            f"{result.videos} videos, {result.events} events ({result.anonymous} anonymous)"
            + (f", {result.counter_rows} counter rows" if result.via == "db" else "")
        )
        if result.rebuild is not None:
            ranked = ", ".join(f"{w} {result.rebuild.ranked.get(w, 0)}" for w in WINDOWS)
            self.stdout.write(f"rankings rebuilt: {ranked}")
        if result.via != "db":
            self.stdout.write("events are on their way through Kafka; the workers count them as they arrive")
        self.stdout.write(f"time: {timing}, total {sum(result.seconds.values()):.1f}s")
