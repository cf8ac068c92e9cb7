"""Time the admin pages that must stay fast with 1,000,000 videos (docs/admin.md).

Requests go through Django's test client against the database of the environment
(``DATABASE_URL``, e.g. from ``scripts/devstack.py up``), as a superuser made for the
purpose (``bench-admin``, no usable password) when missing: the whole admin view,
queries and template, without a network hop. DEBUG is off, as in production.

    python scripts/bench_admin.py                 # every page, 5 timed requests each
    python scripts/bench_admin.py --repeat 9 --explain

Each line: the page, median / min / max wall time of the request, the median time spent
in SQL, the number of statements and the time of the slowest one (last request). ``--explain`` prints the plan of each page's
slowest statement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_USER = "bench-admin"


@contextmanager
def statements_timed(out: list[tuple[float, str, Any]]) -> Iterator[None]:
    """Record (seconds, sql, params) of every statement run inside the block."""
    from django.db import connection

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            out.append((time.perf_counter() - started, sql, params))

    with connection.execute_wrapper(wrapper):
        yield


def pages() -> list[tuple[str, str]]:
    """(label, path) of the pages to time, built from the data present."""
    from videos.models import Video

    latest = Video.objects.order_by("-published_at").values_list("published_at", flat=True).first()
    owner = Video.objects.order_by("id").values_list("owner__username", flat=True).first() or "a"
    videos = "/admin/videos/video/"
    out = [
        ("videos: changelist (date hierarchy, top level)", videos),
        ("videos: title search, common word", f"{videos}?q=ramen"),
        ("videos: title search, no match", f"{videos}?q=zzqx"),
    ]
    if latest is not None:
        y, m, d = latest.year, latest.month, latest.day
        out += [
            ("videos: date hierarchy, a month", f"{videos}?published_at__year={y}&published_at__month={m}"),
            ("videos: date hierarchy, a day", f"{videos}?published_at__year={y}&published_at__month={m}&published_at__day={d}"),
            ("videos: title search within a month", f"{videos}?q=ramen&published_at__year={y}&published_at__month={m}"),
        ]  # fmt: skip
    out += [
        ("owners: autocomplete", f"/admin/autocomplete/?app_label=videos&model_name=video&field_name=owner&term={owner[:4]}"),
        ("dead letters: pending", "/admin/scoring/deadletter/?state=pending"),
    ]  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page (after one warm-up)")
    parser.add_argument("--explain", action="store_true", help="print the plan of each page's slowest statement")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ranking_site.settings.base")
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from videos.selectors import video_count

    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True, "password": "!"}
    )
    client = Client()
    client.force_login(user)
    print(f"{video_count():,} videos; {args.repeat} timed requests per page after one warm-up")
    for label, path in pages():
        warm = client.get(path)  # warm-up: caches, connection, plans
        if warm.status_code != 200:  # e.g. a filter an older version of the admin does not have
            print(f"{label:<45} skipped: HTTP {warm.status_code}")
            continue
        walls: list[float] = []
        in_sql: list[float] = []
        statements: list[tuple[float, str, Any]] = []
        for _ in range(args.repeat):
            statements.clear()
            with statements_timed(statements):
                started = time.perf_counter()
                response = client.get(path)
                walls.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code)
            in_sql.append(sum(s[0] for s in statements))
        slowest = max(statements, key=lambda s: s[0])
        print(
            f"{label:<45} median {statistics.median(walls) * 1000:8.1f} ms  min {min(walls) * 1000:8.1f}  "
            f"max {max(walls) * 1000:8.1f}  | SQL {statistics.median(in_sql) * 1000:7.1f} ms in {len(statements)} "
            f"statements, slowest {slowest[0] * 1000:7.1f} ms"
        )
        if args.explain:
            with connection.cursor() as cur:
                cur.execute("EXPLAIN ANALYZE " + slowest[1], slowest[2])
                print("    " + "\n    ".join(r[0] for r in cur.fetchall()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
