"""The ``leaderboard`` library (3.7.3) on the benchmark's event stream; see scripts/bench/leaderboard_lib.py.

Runs in its own virtualenv (``leaderboard==3.7.3 redis==2.10.6``: the library
only works with redis-py 2.x), so it imports nothing from the project. It talks
to the benchmark's Valkey on a separate database number and prints one JSON
object on stdout:

1. copies the ranking the benchmark measures (our global day ranking: the union of
   the categories' day rankings, scores stored negated) into a library leaderboard,
   so both read the same members;
2. applies the stream one ``change_score_for`` call per event, as an app
   using the library would, and times it;
3. times ``leaders(1, page_size=20)`` and ``rank_for`` lookups.

    python scripts/bench_leaderboard.py --port 6379 --db 5 --source-db 0 \
        --source-key 'rk:{c1}:z:day' --source-key 'rk:{c2}:z:day' --events stream.txt --seconds 10
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time


# The same linear interpolation as bench.util.percentile: this file cannot import the project.
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def board_fill(source, board, key: str, chunk: int = 20000) -> int:
    """Copy the source sorted set (negated scores) into the board with pipelined ZADDs."""
    total = source.zcard(key)
    start = 0
    while start < total:
        rows = source.zrange(key, start, start + chunk - 1, withscores=True)
        if not rows:
            break
        # rank_members takes [member, score, member, score, ...] and pipelines the ZADDs.
        flat = []
        for member, score in rows:
            flat.extend([member.decode() if isinstance(member, bytes) else member, -score])
        board.rank_members(flat)
        start += chunk
    return int(total)


def main(argv: list[str] | None = None) -> int:
    from leaderboard.leaderboard import Leaderboard
    from redis import StrictRedis

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=int, required=True, help="database for the library's keys (flushed)")
    parser.add_argument("--source-db", type=int, default=0)
    parser.add_argument("--source-key", action="append", default=[], help="a sorted set to copy (repeat)")
    parser.add_argument("--events", required=True, help="file of 'member delta' lines")
    parser.add_argument("--seconds", type=float, default=10.0, help="max time applying events")
    parser.add_argument("--skip", type=int, default=0, help="events of the file to skip (earlier runs)")
    parser.add_argument("--reads", type=int, default=2000, help="samples of each read")
    parser.add_argument("--fill", action="store_true", help="flush the database and copy the source ranking")
    args = parser.parse_args(argv)

    source = StrictRedis(host=args.host, port=args.port, db=args.source_db)
    target = StrictRedis(host=args.host, port=args.port, db=args.db)
    board = Leaderboard("bench", host=args.host, port=args.port, db=args.db, page_size=20)
    out: dict[str, object] = {"library": "leaderboard " + Leaderboard.VERSION}
    if args.fill:
        target.flushdb()
        started = time.perf_counter()
        out["members_copied"] = sum(board_fill(source, board, key) for key in args.source_key)
        out["fill_seconds"] = time.perf_counter() - started
    out["members"] = board.total_members()

    with open(args.events) as handle:
        stream = [(m, float(d)) for m, d in (line.split() for line in handle if line.strip())]
    stream = stream[args.skip :] or stream
    applied = 0
    started = time.perf_counter()
    deadline = started + args.seconds
    for member, delta in stream:
        board.change_score_for(member, delta)
        applied += 1
        # Checking the clock every event would add to what is measured; every 256 is enough.
        if applied & 255 == 0 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - started
    out["events_applied"] = applied
    out["update_seconds"] = elapsed
    out["updates_per_s"] = applied / elapsed if elapsed > 0 else 0.0

    top: list[float] = []
    for _ in range(args.reads):
        t = time.perf_counter()
        page = board.leaders(1, page_size=20)
        top.append(time.perf_counter() - t)
    out["top20_rows"] = len(page)
    members = [m for m, _ in stream[:5000]] or ["0"]
    rng = random.Random(1)
    ranks: list[float] = []
    for _ in range(args.reads):
        member = rng.choice(members)
        t = time.perf_counter()
        board.rank_for(member)
        ranks.append(time.perf_counter() - t)
    out["top20_p50_ms"] = percentile(top, 50) * 1000
    out["top20_p99_ms"] = percentile(top, 99) * 1000
    out["rank_p50_ms"] = percentile(ranks, 50) * 1000
    out["rank_p99_ms"] = percentile(ranks, 99) * 1000
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
