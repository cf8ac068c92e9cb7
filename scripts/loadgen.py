"""HTTP load generator: a fleet of client apps posting engagement events to the API.

Standard library only (threads, one keep-alive connection each, through
scripts/httpclient.py beside it), so it runs from any Python 3.11 without the
project's dependencies. Loopback targets only, and always bounded in time.

    python scripts/loadgen.py --api-key KEY --duration 30 --concurrency 8 --rate 2000 --batch 50

Every second it prints the achieved event rate, HTTP status counts and request
latency percentiles (p50/p95/p99), then a summary (``--json``: as one JSON line).

With ``--rate`` the requests go out on a fixed schedule (open loop, see
scripts/httpclient.py): each latency runs from the request's scheduled send time,
so a server stall shows in every request it held back, not only in the one it was
answering. Without ``--rate`` each client sends as soon as its previous answer is
back (closed loop, for the most events/s) and latency runs from the send.
Videos come from ``GET /api/v1/videos/`` (published ones, paged) unless a
``--videos`` range or list is given; their popularity follows Zipf(``--zipf``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from httpclient import TRANSPORT_ERRORS, Client, Schedule, api_key_headers, loopback_address  # scripts/ is on sys.path

EVENTS_PATH = "/api/v1/events/"
VIDEOS_PATH = "/api/v1/videos/"
MAX_DURATION_S = 3600
MAX_BATCH = 1000  # the API's limit per request


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def client(self, **kwargs: Any) -> Client:
        return Client(self.host, self.port, **kwargs)


def target_parse(url: str) -> Target:
    try:
        host, port, _ = loopback_address(url)
    except ValueError as exc:
        raise SystemExit(f"loadgen: {exc}") from None
    return Target(host, port)


def mix_parse(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            raise SystemExit(f"loadgen: bad --mix entry {part!r}; expected name=weight") from None
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise SystemExit("loadgen: --mix needs at least one positive weight")
    return mix


def videos_parse(text: str) -> list[tuple[int, int | None]]:
    """``1-500`` or ``3,5,8`` -> [(video id, duration unknown)]."""
    if "-" in text and "," not in text:
        low, high = (int(x) for x in text.split("-", 1))
        return [(v, None) for v in range(low, high + 1)]
    return [(int(v), None) for v in text.split(",") if v.strip()]


def videos_fetch(target: Target, limit: int) -> list[tuple[int, int | None]]:
    """Published videos from the catalogue API, paged, with their durations."""
    found: list[tuple[int, int | None]] = []
    with target.client() as client:
        while len(found) < limit:
            response = client.get(f"{VIDEOS_PATH}?limit=100&offset={len(found)}")
            if response.status != 200:
                raise SystemExit(f"loadgen: GET {VIDEOS_PATH} answered {response.status}: {response.body[:300]!r}")
            page = response.json()
            rows = page.get("results", [])
            found.extend((int(v["id"]), v.get("duration_seconds")) for v in rows)
            if not rows or not page.get("next"):
                break
    return found[:limit]


@dataclass
class Stats:
    """Counters shared by the workers; the reporter swaps out the interval's part every second."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    total_events: int = 0
    total_statuses: Counter[str] = field(default_factory=Counter)
    total_latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    fatal: str | None = None  # set when going on is pointless (key refused): every worker stops
    finished_at: float = 0.0  # when the last client finished its last request
    first_error: str | None = None  # one rejected request's answer, to say why
    unsent: int = 0  # requests of the schedule never sent: the clients could not keep up with --rate

    def record(self, status: str, latency: float, accepted: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(latency)
            self.events += accepted

    def interval(self) -> tuple[int, Counter[str], list[float]]:
        with self.lock:
            out = (self.events, self.statuses, self.latencies)
            self.events, self.statuses, self.latencies = 0, Counter(), []
            self.total_events += out[0]
            self.total_statuses.update(out[1])
            self.total_latencies.extend(out[2])
        return out


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    # Nearest rank: the smallest value with at least pct% of the values at or below it.
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_text(values: list[float]) -> str:
    ordered = sorted(values)
    return " ".join(f"p{p} {percentile(ordered, p) * 1000:7.1f}ms" for p in (50, 95, 99))


@dataclass(frozen=True)
class Workload:
    videos: list[tuple[int, int | None]]
    video_cum: list[float]
    types: list[str]
    type_cum: list[float]
    users: int
    batch: int

    def events(self, rng: random.Random) -> list[dict[str, Any]]:
        picks = rng.choices(self.videos, cum_weights=self.video_cum, k=self.batch)
        kinds = rng.choices(self.types, cum_weights=self.type_cum, k=self.batch)
        out = []
        for (video_id, duration), kind in zip(picks, kinds, strict=True):
            event: dict[str, Any] = {"event_id": str(uuid.uuid4()), "video_id": video_id, "type": kind}
            if self.users:
                event["user_id"] = f"load-{rng.randrange(self.users)}"
            if kind == "watch":
                event["watch_seconds"] = round((duration or 300) * rng.random() ** 0.7, 1)
            out.append(event)
        return out


def worker(*, target: Target, api_key: str, workload: Workload, schedule: Schedule, stats: Stats, seed: int) -> None:
    """POST batches at the schedule's send times; each latency runs from the request's send time
    on the schedule (open loop), so requests that a stall held back count the time they waited."""
    rng = random.Random(seed)
    client = target.client(headers=api_key_headers(api_key))
    while stats.fatal is None:
        body = json.dumps({"events": workload.events(rng)}).encode()  # built before its slot: not timed
        slot = schedule.next()
        if slot is None:
            break
        client.timeout = max(1.0, schedule.stop_at - time.monotonic() + 5)  # no request outlives the run by much
        try:
            response = client.post(EVENTS_PATH, body)
        except TRANSPORT_ERRORS as exc:
            stats.record(type(exc).__name__, time.monotonic() - slot, 0)
            time.sleep(0.05)
            continue
        latency = time.monotonic() - slot
        accepted = 0
        if response.status == 202:
            accepted = int(response.json().get("accepted", 0))
        stats.record(str(response.status), latency, accepted)
        if response.status != 202 and stats.first_error is None:
            stats.first_error = f"{response.status}: {response.body[:300].decode(errors='replace')}"
        if response.status in (401, 403):
            stats.fatal = f"the API refused the key ({response.status}): {response.body[:200].decode(errors='replace')}"
    client.close()
    with stats.lock:
        stats.finished_at = max(stats.finished_at, time.monotonic())


def report_loop(*, stats: Stats, started: float, deadline: float, rate: float, threads: list[threading.Thread]) -> None:
    """One line per second until every client is done (the last, partial second included)."""
    tick = started
    while True:
        tick += 1.0
        while time.monotonic() < tick and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        now = min(time.monotonic(), tick)
        events, statuses, latencies = stats.interval()
        if statuses or now >= tick:
            span = max(now - (tick - 1.0), 1e-3)
            codes = " ".join(f"{code}:{n}" for code, n in sorted(statuses.items())) or "-"
            goal = f"/{rate:.0f}" if rate else ""
            print(
                f"{now - started:5.1f}s  {events / span:7.0f}{goal} ev/s  req {sum(statuses.values()):5d}  "
                f"[{codes}]  {latency_text(latencies)}",
                flush=True,
            )
        if not any(t.is_alive() for t in threads) or time.monotonic() > deadline + 30:
            break  # a hung request cannot keep us past the bound: the clients are daemon threads


def load_run(
    *, target: Target, api_key: str, workload: Workload, concurrency: int, rate: float, duration: float, seed: int
) -> Stats:
    """``concurrency`` clients for ``duration`` seconds, at ``rate`` events/s in all (0: each as fast
    as its answers come), printing a line per second."""
    stats = Stats()
    stats.started = time.monotonic()
    deadline = stats.started + duration
    schedule = Schedule(rate / workload.batch if rate > 0 else None, start=stats.started, end=deadline)
    threads = [
        threading.Thread(
            target=worker,
            kwargs={
                "target": target,
                "api_key": api_key,
                "workload": workload,
                "schedule": schedule,
                "stats": stats,
                "seed": seed * 1000 + i,
            },
            daemon=True,  # a request stuck past the bound must not keep the process alive
        )
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    try:
        report_loop(stats=stats, started=stats.started, deadline=deadline, rate=rate, threads=threads)
    except KeyboardInterrupt:
        print("loadgen: interrupted", file=sys.stderr)
    stats.interval()
    stats.unsent = schedule.unsent
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the API (loopback only)")
    parser.add_argument("--api-key", default=os.environ.get("LOADGEN_API_KEY"), help="ingestion key")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (one connection each)")
    parser.add_argument("--rate", type=float, default=0, help="target events/s in total; 0 = as fast as possible")
    parser.add_argument("--batch", type=int, default=50, help=f"events per request (1..{MAX_BATCH})")
    parser.add_argument("--duration", type=float, default=30, help=f"seconds to run (at most {MAX_DURATION_S})")
    parser.add_argument("--mix", default="view=70,like=15,comment=5,share=3,watch=7", help="event type weights")
    parser.add_argument("--zipf", type=float, default=1.1, help="video popularity exponent")
    parser.add_argument("--videos", default=None, help="video ids: a range 1-500 or a list 3,5,8 (default: fetch)")
    parser.add_argument("--max-videos", type=int, default=5000, help="videos fetched from the API at most")
    parser.add_argument("--users", type=int, default=100_000, help="distinct user ids (0: anonymous events)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one each run)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    args = parser.parse_args(argv)

    if not args.api_key:
        parser.error("--api-key (or LOADGEN_API_KEY) is required")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}]")
    if not 1 <= args.batch <= MAX_BATCH or args.concurrency < 1 or args.rate < 0 or args.zipf <= 0:
        parser.error("need 1 <= --batch <= 1000, --concurrency >= 1, --rate >= 0, --zipf > 0")
    target = target_parse(args.url)
    mix = mix_parse(args.mix)
    videos = videos_parse(args.videos) if args.videos else videos_fetch(target, args.max_videos)
    if not videos:
        print("loadgen: no videos to send events to (seed some first)", file=sys.stderr)
        return 1
    if args.seed is None:
        # A fixed default would replay the same users on the same videos each run, and the
        # server would drop the repeated views as duplicates.
        args.seed = random.SystemRandom().randrange(2**31)
    rng = random.Random(args.seed)
    rng.shuffle(videos)  # popularity rank is random, not by id
    workload = Workload(
        videos=videos,
        video_cum=list(itertools.accumulate(1.0 / r**args.zipf for r in range(1, len(videos) + 1))),
        types=list(mix),
        type_cum=list(itertools.accumulate(mix.values())),
        users=args.users,
        batch=args.batch,
    )
    print(
        f"loadgen: {len(videos)} videos, {args.concurrency} clients, batch {args.batch}, "
        f"rate {args.rate or 'max'} ev/s, {args.duration:.0f}s against {target.host}:{target.port}",
        flush=True,
    )

    stats = load_run(
        target=target, api_key=args.api_key, workload=workload, concurrency=args.concurrency, rate=args.rate,
        duration=args.duration, seed=args.seed,
    )  # fmt: skip
    if stats.fatal:
        print(f"loadgen: stopped: {stats.fatal}", file=sys.stderr)
    elif stats.first_error:
        print(f"loadgen: first rejected request: {stats.first_error}", file=sys.stderr)
    if stats.unsent and not stats.fatal:
        print(f"loadgen: {stats.unsent} requests of the schedule were never sent: the clients fell behind "
              f"--rate (more --concurrency?); the latencies leave them out", file=sys.stderr)  # fmt: skip
    elapsed = (stats.finished_at or time.monotonic()) - stats.started
    summary = {
        "seconds": round(elapsed, 2),
        "events_accepted": stats.total_events,
        "events_per_s": round(stats.total_events / elapsed, 1) if elapsed else 0.0,
        "requests": sum(stats.total_statuses.values()),
        "statuses": dict(sorted(stats.total_statuses.items())),
        "unsent": stats.unsent,
        "latency_ms": {f"p{p}": round(percentile(sorted(stats.total_latencies), p) * 1000, 2) for p in (50, 95, 99)},
    }
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(
            f"total: {summary['events_accepted']} events accepted in {summary['seconds']}s "
            f"({summary['events_per_s']} ev/s), {summary['requests']} requests {summary['statuses']}, "
            f"latency {latency_text(stats.total_latencies)}",
            flush=True,
        )
    return 0 if stats.total_events else 1


if __name__ == "__main__":
    sys.exit(main())
