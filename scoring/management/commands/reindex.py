"""Rebuild every ranking from Postgres (swapped in atomically), or check Redis for drift."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.progress import StageBars
from leaderboard.windows import WINDOWS
from scoring.drift import DriftReport, rankings_drift_check
from scoring.rebuild import rankings_rebuild


class Command(BaseCommand):
    help = "Rebuild the rankings and metadata cache from Postgres; --check only reports drift (exit 1)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="compare Redis with Postgres, change nothing")
        parser.add_argument("--examples", type=int, default=5, help="examples shown per drifted key (--check)")
        parser.add_argument("--verbose-keys", action="store_true", help="list clean keys too (--check)")
        parser.add_argument("--chunk", type=int, default=20_000, help="rows per Redis pipeline (rebuild)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["check"]:
            self.report_drift(rankings_drift_check(examples=opts["examples"]), verbose=opts["verbose_keys"])
            return
        bars = StageBars(units={"metadata": "video", "scores": "video"}, enabled=False if opts["no_progress"] else None)
        try:
            result = rankings_rebuild(progress=bars, chunk=opts["chunk"])
        finally:
            bars.close()
        if not result.built:
            raise CommandError("another rebuild is running; nothing done", returncode=2)
        ranked = ", ".join(f"{window} {result.ranked.get(window, 0)}" for window in WINDOWS)
        self.stdout.write(
            f"rebuilt generation {result.generation}: {result.videos} videos; ranked per window: {ranked}; "
            f"replayed {result.replayed_batches} late batches; {result.seconds:.1f}s"
        )

    def report_drift(self, report: DriftReport, *, verbose: bool) -> None:
        for note in report.notes:
            self.stdout.write(f"note: {note}")
        if not report.built:
            raise CommandError("drift: the rankings are not built (run reindex)", returncode=1)
        for key in report.keys:
            if not key.drifted:
                if verbose:
                    self.stdout.write(f"ok     {key.key}: {key.actual} entries")
                continue
            self.stdout.write(
                f"DRIFT  {key.key}: expected {key.expected}, redis {key.actual}; "
                f"missing {key.missing}, extra {key.extra}, different {key.different}"
            )
            for example in key.examples:
                self.stdout.write(f"         {example}")
        drifted = [k for k in report.keys if k.drifted]
        self.stdout.write(
            f"checked {len(report.keys)} keys for {report.videos} videos in {report.seconds:.1f}s "
            f"(generation {report.generation}); {report.in_flight_batches} batches in flight, "
            f"{report.skipped_videos} of their videos skipped"
        )
        if drifted:
            raise CommandError(f"drift in {len(drifted)} key(s); `manage.py reindex` repairs it", returncode=1)
        self.stdout.write("no drift")
