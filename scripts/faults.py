"""Fault-injection harness: a known event stream through the real stack while
the bridge and the worker are SIGKILLed and Redis is wiped, then a comparison
of every hourly counter and ranking score with the ground truth.

    python scripts/faults.py --events 20000 --videos 500 --kills 3

It starts its own servers (folder .devdata/faults), web (gunicorn), bridge,
Celery worker and beat, and prints events accepted, lost, double-counted and
the largest score difference. The bar is 0 lost, 0 double-counted. The test
suite runs a smaller version of the same ``harness_run``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from httpclient import TRANSPORT_ERRORS, Client, api_key_headers, loopback_address  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
MAX_503_RETRIES = 120  # one minute of retries at 0.5 s
TYPES = [("view", 60), ("like", 15), ("comment", 5), ("share", 5), ("watch", 15)]


@dataclass
class Controls:
    """How the harness acts on the stack; the test and the CLI wire these differently."""

    post: Callable[[list[dict[str, Any]]], tuple[int, dict[str, Any]]]
    kill_bridge: Callable[[], None]
    start_bridge: Callable[[], None]
    kill_worker: Callable[[], None]
    start_worker: Callable[[], None]
    wipe_redis: Callable[[], None]


@dataclass
class Report:
    sent: int = 0
    accepted: int = 0
    resent: int = 0
    rejected_503: int = 0
    lost: int = 0
    double_counted: int = 0
    max_score_diff: float = 0.0
    keys_checked: int = 0
    seconds: float = 0.0
    faults: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"events sent (incl. resends): {self.sent}",
            f"events accepted (unique ids): {self.accepted}",
            f"resent event ids:            {self.resent}",
            f"503 answers (retried):       {self.rejected_503}",
            f"faults injected:             {', '.join(self.faults)}",
            f"lost:                        {self.lost}",
            f"double-counted:              {self.double_counted}",
            f"largest score difference:    {self.max_score_diff:.3g} over {self.keys_checked} ranking keys",
            f"wall time:                   {self.seconds:.1f}s",
            *(f"  e.g. {line}" for line in self.examples),
        ]


def stream(*, video_ids: list[int], durations: dict[int, int], count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    names, weights = zip(*TYPES, strict=True)
    events = []
    for _ in range(count):
        vid = video_ids[min(int(rng.paretovariate(1.2)) - 1, len(video_ids) - 1)]
        type_ = rng.choices(names, weights)[0]
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "video_id": vid,
            "type": type_,
            "occurred_at": (now - timedelta(seconds=rng.uniform(0, 3 * 3600))).isoformat(),
        }
        if type_ == "watch":
            event["watch_seconds"] = round(rng.uniform(0, durations[vid] * 1.2), 1)
        events.append(event)
    return events


def harness_run(
    *,
    controls: Controls,
    video_ids: list[int],
    durations: dict[int, int],
    events: int,
    batch: int = 500,
    resend_ratio: float = 0.1,
    kills: int = 3,
    wipe: bool = True,
    seed: int = 7,
    settle_timeout: float = 180.0,
    log: Callable[[str], None] = print,
) -> Report:
    """Send the stream with faults in between; wait for the stack to settle; compare."""
    from django.conf import settings

    report = Report()
    started = time.monotonic()
    rng = random.Random(seed + 1)
    body = stream(video_ids=video_ids, durations=durations, count=events, seed=seed)
    batches = [body[i : i + batch] for i in range(0, len(body), batch)]
    resends: list[dict[str, Any]] = []
    accepted: dict[str, dict[str, Any]] = {}
    fault_at = {round(len(batches) * (i + 1) / (kills + 1)) for i in range(kills)}
    wipe_at = len(batches) // 2 if wipe else -1
    for index, chunk in enumerate(batches):
        resend_now = [e for e in resends if rng.random() < 0.5]
        resends = [e for e in resends if e not in resend_now]
        payload = chunk + resend_now
        for _attempt in range(MAX_503_RETRIES + 1):
            status, answer = controls.post(payload)
            report.sent += len(payload)
            if status == 202:
                break
            if status != 503:
                raise RuntimeError(f"unexpected answer {status}: {json.dumps(answer)[:500]}")
            report.rejected_503 += 1  # the client's duty: retry the same event ids
            time.sleep(0.5)
        else:
            raise RuntimeError(f"still 503 after {MAX_503_RETRIES} retries: the stack did not recover")
        for event in payload:
            accepted[event["event_id"]] = event
        resends += [e for e in chunk if rng.random() < resend_ratio]
        report.resent += len(resend_now)
        if index in fault_at:
            victim = ("bridge", "worker")[sum(f.startswith("kill") for f in report.faults) % 2]
            log(f"[{index + 1}/{len(batches)}] SIGKILL {victim}, restart")
            (controls.kill_bridge if victim == "bridge" else controls.kill_worker)()
            (controls.start_bridge if victim == "bridge" else controls.start_worker)()
            report.faults.append(f"kill {victim}")
        if index == wipe_at:
            log(f"[{index + 1}/{len(batches)}] wipe Redis")
            controls.wipe_redis()
            report.faults.append("wipe redis")
    if resends:
        controls.post(resends)
        report.sent += len(resends)
        report.resent += len(resends)
    report.accepted = len(accepted)
    log(f"stream sent: {report.sent} events, {report.accepted} unique; waiting for the pipeline to settle")
    if not settle(event_ids=list(accepted), timeout=settle_timeout, log=log):
        log("warning: pipeline did not settle in time; comparing anyway")
    verify(report=report, accepted=list(accepted.values()), durations=durations)
    report.seconds = time.monotonic() - started
    _ = settings  # settings must be configured before calling
    return report


def settle(*, event_ids: list[str], timeout: float, log: Callable[[str], None]) -> bool:
    from django.db import connection

    from leaderboard.store import scopes_not_built
    from scoring.models import Batch
    from scoring.rebuild import all_scopes

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM scoring_seenevent WHERE key = ANY(%s::uuid[])", [event_ids])
            seen = int(cur.fetchone()[0])
        pending = Batch.objects.filter(applied_at__isnull=True).count()
        ready = not scopes_not_built(scopes=all_scopes())
        state = f"claimed {seen}/{len(event_ids)} ids, {pending} batches pending, rankings built: {ready}"
        if state != last:
            log(state)
            last = state
        if seen == len(event_ids) and pending == 0 and ready:
            return True
        time.sleep(0.5)
    return False


def verify(*, report: Report, accepted: list[dict[str, Any]], durations: dict[int, int]) -> None:
    """Compare Postgres counters and every Redis ranking with the ground truth."""
    from django.db import connection

    from core.redis import redis_client
    from events.models import EventType
    from leaderboard import keys as rk
    from leaderboard.windows import WINDOW_BITS, epoch, hour_floor, minute_floor, rising_score, window_mask
    from scoring.models import HourlyCounter
    from scoring.selectors import window_anchor

    types = {t.name: t for t in EventType.objects.all()}
    truth: dict[tuple[int, str, datetime], list[float]] = defaultdict(lambda: [0, 0.0])
    for event in accepted:
        hour = hour_floor(datetime.fromisoformat(event["occurred_at"]))
        units = 1.0
        if event["type"] == "watch":
            units = min(event["watch_seconds"] / durations[event["video_id"]], 1.0)
        slot = truth[(event["video_id"], event["type"], hour)]
        slot[0] += 1
        slot[1] += units
    actual: dict[tuple[int, str, datetime], list[float]] = defaultdict(lambda: [0, 0.0])
    for row in HourlyCounter.objects.filter(video_id__in={k[0] for k in truth}).select_related("event_type"):
        actual[(row.video_id, row.event_type.name, row.hour)] = [row.events, row.units]
    for key in set(truth) | set(actual):
        diff = int(actual[key][0] - truth[key][0])
        report.lost += max(-diff, 0)
        report.double_counted += max(diff, 0)
        if diff and len(report.examples) < 5:
            video, type_, hour = key
            report.examples.append(f"{video}/{type_}/{hour:%H}h: counted {actual[key][0]}, accepted {truth[key][0]}")

    anchor = window_anchor()
    with connection.cursor() as cur:
        cur.execute("SELECT id, category_id FROM videos_video WHERE id = ANY(%s)", [list({k[0] for k in truth})])
        category_of = dict(cur.fetchall())
    client = redis_client()
    trend = {
        cid: tuple(float(x) for x in client.hmget(rk.trend_key(rk.scope_for(cid)), "t0", "hl"))
        for cid in {None, *category_of.values()}
    }
    expected: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for event in accepted:
        vid = event["video_id"]
        minute = minute_floor(datetime.fromisoformat(event["occurred_at"]))
        units = min(event["watch_seconds"] / durations[vid], 1.0) if event["type"] == "watch" else 1.0
        score = types[event["type"]].weight * units
        mask = window_mask(minute, anchor)
        for window, bit in WINDOW_BITS.items():
            if mask & bit:
                for cid in (None, category_of[vid]):
                    t0, hl = trend[cid]
                    value = score * (2 ** ((epoch(minute) - t0) / hl) if window == "trending" else 1)
                    expected[rk.ranking_key(window, cid)][vid] += value
    for cid in {None, *category_of.values()}:
        hours, weeks = expected[rk.ranking_key("hour", cid)], expected[rk.ranking_key("week", cid)]
        for vid, hour_score in hours.items():
            expected[rk.ranking_key("rising", cid)][vid] = rising_score(hour_score, weeks.get(vid, 0.0))
    for zkey, scores in expected.items():
        stored = {rk.video_id_of(m): -s for m, s in client.zrange(zkey, 0, -1, withscores=True)}
        report.keys_checked += 1
        for vid in set(scores) | set(stored):
            want, got = scores.get(vid, 0.0), stored.get(vid, 0.0)
            scale = max(abs(want), 1.0)
            report.max_score_diff = max(report.max_score_diff, abs(want - got) / scale)


# --- standalone run --------------------------------------------------------------


def http_poster(url: str, key: str) -> Callable[[list[dict[str, Any]]], tuple[int, dict[str, Any]]]:
    """POST event batches with an API key; no answer at all (refused, reset) reads as 503: retry the same ids."""
    host, port, path = loopback_address(url)
    client = Client(host, port, headers=api_key_headers(key))

    def post(events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        try:
            response = client.post_json(path, {"events": events})
        except TRANSPORT_ERRORS:
            return 503, {}
        return response.status, response.json() or {}

    return post


def main() -> int:
    import signal
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--videos", type=int, default=500)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--resend", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import devstack

    stack = devstack.Stack(ROOT / ".devdata" / "faults")
    env = {**os.environ, **stack.up(), "DJANGO_SETTINGS_MODULE": "ranking_site.settings.base", "DEBUG": "false"}
    env["KAFKA_TOPIC"] = f"faults-{uuid.uuid4().hex[:8]}"
    env["KAFKA_SESSION_TIMEOUT_MS"] = "6000"
    env["THROTTLE_INGEST_PER_KEY"] = "1000000/min"
    env["THROTTLE_INGEST_PER_IP"] = "1000000/min"
    os.environ.update(env)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = ROOT / ".devdata" / "faults" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    commands = {
        "web": [py, "-m", "gunicorn", "ranking_site.wsgi:application", "-b", f"127.0.0.1:{args.port}", "-w", "2"],
        "bridge": [py, "manage.py", "kafka_bridge", "--max-wait-ms", "50"],
        "worker": [py, "-m", "celery", "-A", "ranking_site", "worker", "--pool", "threads", "--concurrency", "4",
                   "-Q", "batches,maintenance", "-l", "warning", "-n", f"faults-{os.getpid()}@%h"],
        "beat": [py, "-m", "celery", "-A", "ranking_site", "beat", "-l", "warning",
                 "--schedule", str(logs / "beat-schedule")],
    }  # fmt: skip

    def start(name: str) -> None:
        with open(logs / f"{name}.log", "ab") as out:
            procs[name] = subprocess.Popen(commands[name], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(name: str) -> None:
        procs[name].send_signal(signal.SIGKILL)
        procs[name].wait()

    try:
        subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.db import connection

        from core.kafka import topic_ensure
        from core.redis import redis_client
        from events.models import ApiKey
        from scoring.models import Batch, HourlyCounter, SeenEvent
        from scoring.rebuild import rankings_rebuild
        from videos.models import Category, Video

        Batch.objects.all().delete()
        HourlyCounter.objects.all().delete()
        SeenEvent.objects.all().delete()
        Video.objects.all().delete()
        redis_client().flushall()
        owner, _ = User.objects.get_or_create(username="faults")
        cats = [
            Category.objects.get_or_create(slug=f"faults-{i}", defaults={"name": f"Faults {i}"})[0] for i in range(5)
        ]
        videos = Video.objects.bulk_create(
            Video(title=f"Fault video {i}", category=cats[i % 5], owner=owner, duration_seconds=30 + i % 600)
            for i in range(args.videos)
        )
        connection.close()
        rankings_rebuild()
        topic_ensure()
        _, key = ApiKey.objects.create_key(name="faults")
        for name in commands:
            start(name)
        time.sleep(3)

        def wipe() -> None:
            redis_client().flushall()

        controls = Controls(
            post=http_poster(f"http://127.0.0.1:{args.port}/api/v1/events/", key),
            kill_bridge=lambda: kill("bridge"),
            start_bridge=lambda: start("bridge"),
            kill_worker=lambda: kill("worker"),
            start_worker=lambda: start("worker"),
            wipe_redis=wipe,
        )
        report = harness_run(
            controls=controls,
            video_ids=[v.id for v in videos],
            durations={v.id: v.duration_seconds for v in videos},
            events=args.events,
            resend_ratio=args.resend,
            kills=args.kills,
            seed=args.seed,
            settle_timeout=300,
        )
        print("\n".join(report.lines()))
        return 0 if report.lost == 0 and report.double_counted == 0 and report.max_score_diff < 1e-6 else 1
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
