"""Fault-injection harness: a known event stream through the real stack while it is
hurt, then a comparison of every hourly counter and ranking score with the ground truth.

    python scripts/faults.py --events 20000 --videos 500 --kills 4
    python scripts/faults.py --events 20000 --videos 500 --kills 4 --cluster

Faults, spread over the stream: SIGKILL of the bridge and of the worker (each
restarted at once), a wipe of Redis, the Kafka broker paused (SIGSTOP, then
SIGCONT ``--pause-kafka`` seconds later: the API answers 503 and the client
resends the same event ids), PostgreSQL restarted (fast shutdown, down for
``--restart-postgres`` seconds, start) and Valkey paused. With ``--cluster`` the
rankings live on a 3-master Valkey cluster, two bridges and two workers share
the work, and one master is restarted empty mid-stream: only the scopes it held
may be rebuilt, every other scope must keep its generation.

It starts its own servers (folder .devdata/faults or .devdata/faults-cluster),
web (gunicorn), bridges, Celery workers and beat, and prints events accepted,
lost, double-counted, the largest score difference and what each fault did. The
bar is 0 lost, 0 double-counted. The test suite runs smaller versions of the same
``harness_run`` (tests/scripts/test_faults.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from httpclient import TRANSPORT_ERRORS, Client, api_key_headers, loopback_address  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
# How long one payload may keep getting 503 before the run gives up: longer than any fault lasts.
RETRY_FOR_S = 120.0
RETRY_DEFAULT_S = 0.5  # when a 503 names no Retry-After (no answer at all)
TYPES = [("view", 60), ("like", 15), ("comment", 5), ("share", 5), ("watch", 15)]

# (status, JSON body, Retry-After seconds or None) of one POST of events
Answer = tuple[int, dict[str, Any], float | None]


@dataclass
class Controls:
    """How the harness acts on the stack; the test and the CLI wire these differently.

    The faults after ``wipe_redis`` are optional: a stack that cannot do one leaves it
    None, and asking the harness for that fault is an error.
    """

    post: Callable[[list[dict[str, Any]]], Answer]
    # The kills may return the name of the process they killed, for the report.
    kill_bridge: Callable[[], str | None]
    start_bridge: Callable[[], None]
    kill_worker: Callable[[], str | None]
    start_worker: Callable[[], None]
    wipe_redis: Callable[[], None]
    pause_kafka: Callable[[], None] | None = None
    resume_kafka: Callable[[], None] | None = None
    pause_valkey: Callable[[], None] | None = None
    resume_valkey: Callable[[], None] | None = None
    # Fast shutdown, down for the given seconds, start. Runs on a thread of its own.
    restart_postgres: Callable[[float], None] | None = None
    # Restart the cluster master with this index (devstack's order) with no data.
    restart_master_empty: Callable[[int], None] | None = None
    master_ports: Sequence[int] = ()
    # The stack's processes that stopped without the harness killing them, one line each: a
    # bridge or worker that died leaves events unread or batches unprocessed, and the report
    # must name it rather than only count what went missing.
    exited: Callable[[], list[str]] = list


@dataclass
class FaultPlan:
    """Which faults one run injects; 0 / None / False leaves a fault out."""

    kills: int = 3
    wipe: bool = True
    pause_kafka_s: float = 0.0
    restart_postgres_down_s: float | None = None
    pause_valkey_s: float = 0.0
    restart_master: bool = False

    def order(self) -> list[str]:
        """Kills alternate bridge and worker, interleaved with the other faults."""
        kills = [("kill bridge", "kill worker")[i % 2] for i in range(self.kills)]
        others = [
            name
            for name, wanted in (
                ("pause kafka", self.pause_kafka_s > 0),
                ("wipe redis", self.wipe),
                ("restart postgres", self.restart_postgres_down_s is not None),
                ("pause valkey", self.pause_valkey_s > 0),
                # After the wipe: it waits for the wipe's rebuild before recording the generations.
                ("restart master", self.restart_master),
            )
            if wanted
        ]
        order: list[str] = []
        while kills or others:
            if kills:
                order.append(kills.pop(0))
            if others:
                order.append(others.pop(0))
        return order


# Faults that go on while the stream does; the others are over at once.
LASTING = ("pause kafka", "pause valkey", "restart postgres")


@dataclass
class Fault:
    """One injected fault and what the client saw while it lasted."""

    name: str
    batch: int
    at_s: float
    detail: str = ""
    until_s: float | None = None  # when it was over (None: still on)
    answers_503: Counter[str] = field(default_factory=Counter)
    longest_wait_s: float = 0.0  # the longest one payload waited for its 202 meanwhile

    def overlaps(self, start_s: float, end_s: float) -> bool:
        """Whether the fault was on at some time between the two (one still on: from its start on)."""
        # A second of grace: an answer a fault delayed may arrive just after it ended.
        return end_s >= self.at_s and (self.until_s is None or start_s <= self.until_s + 1.0)

    def line(self) -> str:
        head = f"at batch {self.batch}, {self.at_s:.1f}s: {self.name}" + (f" {self.detail}" if self.detail else "")
        if self.name not in LASTING:
            return head
        span = f" for {self.until_s - self.at_s:.1f}s" if self.until_s is not None else " (not over)"
        seen = ", ".join(f"{code} {n}" for code, n in sorted(self.answers_503.items())) or "none"
        return f"{head}{span}; 503 answers: {seen}; longest wait for a 202 {self.longest_wait_s:.1f}s"


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
    faults: list[Fault] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    # The master restarted empty: the scopes it held, and the scopes whose generation moved.
    master_scopes: list[str] | None = None
    rebuilt_scopes: list[str] = field(default_factory=list)
    kept_scopes: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        only_lost_rebuilt = self.master_scopes is None or sorted(self.master_scopes) == sorted(self.rebuilt_scopes)
        counted_right = self.lost == 0 and self.double_counted == 0 and self.max_score_diff < 1e-6
        return counted_right and only_lost_rebuilt and not self.exited

    def lines(self) -> list[str]:
        lines = [
            f"events sent (incl. resends): {self.sent}",
            f"events accepted (unique ids): {self.accepted}",
            f"resent event ids:            {self.resent}",
            f"503 answers (retried):       {self.rejected_503}",
            "faults injected:",
            *(f"  {fault.line()}" for fault in self.faults),
        ]
        if self.master_scopes is not None:
            lines += [
                f"scopes of the master restarted empty: {', '.join(sorted(self.master_scopes))}",
                f"scopes rebuilt (new generation):      {', '.join(sorted(self.rebuilt_scopes)) or 'none'}",
                f"scopes that kept their generation:    {', '.join(sorted(self.kept_scopes)) or 'none'}",
            ]
        if self.exited:
            lines += ["processes that stopped on their own:", *(f"  {line}" for line in self.exited)]
        return [
            *lines,
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


class _Background:
    """Pauses and restarts that last while the stream goes on; all ended by ``finish``."""

    def __init__(self, started: float, log: Callable[[str], None]) -> None:
        self.started = started
        self.log = log
        self.threads: list[threading.Thread] = []
        self.pending: dict[str, threading.Event] = {}  # pauses not yet resumed, by fault

    def pause(self, fault: Fault, seconds: float, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        done = threading.Event()

        def later() -> None:
            done.wait(seconds)
            self._end(fault, resume)

        pause()
        self.pending[fault.name] = done
        self._thread(later)

    def run(self, fault: Fault, action: Callable[[], None]) -> None:
        def go() -> None:
            try:
                action()
            finally:
                fault.until_s = time.monotonic() - self.started
                self.log(f"{fault.name}: over after {fault.until_s - fault.at_s:.1f}s")

        self._thread(go)

    def _end(self, fault: Fault, resume: Callable[[], None]) -> None:
        if self.pending.pop(fault.name, None) is None:
            return
        resume()
        fault.until_s = time.monotonic() - self.started
        self.log(f"{fault.name}: resumed after {fault.until_s - fault.at_s:.1f}s")

    def _thread(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        """Resume whatever is still paused (at once when the run failed) and wait for the threads."""
        for done in list(self.pending.values()):
            done.set()
        for thread in self.threads:
            thread.join()


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
    pause_kafka_s: float = 0.0,
    restart_postgres_down_s: float | None = None,
    pause_valkey_s: float = 0.0,
    restart_master: bool = False,
    rate: float | None = None,
    seed: int = 7,
    settle_timeout: float = 180.0,
    log: Callable[[str], None] = print,
) -> Report:
    """Send the stream with faults in between; wait for the stack to settle; compare.

    ``rate`` (events/s) paces the payloads like a fleet of clients would send them, so the
    faults meet a pipeline that is busy counting rather than one still behind the stream.
    """
    plan = FaultPlan(kills, wipe, pause_kafka_s, restart_postgres_down_s, pause_valkey_s, restart_master)
    run = _Run(controls=controls, plan=plan, log=log)
    body = stream(video_ids=video_ids, durations=durations, count=events, seed=seed)
    try:
        run.stream(body, batch=batch, resend_ratio=resend_ratio, rate=rate, seed=seed)
    finally:
        run.background.finish()
    report = run.report
    log(f"stream sent: {report.sent} events, {report.accepted} unique; waiting for the pipeline to settle")
    if not settle(event_ids=list(run.accepted), timeout=settle_timeout, log=log):
        log("warning: pipeline did not settle in time; comparing anyway")
    verify(report=report, accepted=list(run.accepted.values()), durations=durations)
    report.exited = controls.exited()
    if report.master_scopes is not None:
        after = _retrying(lambda: scope_generations(list(run.generations)), timeout=30, log=log)
        report.rebuilt_scopes = sorted(s for s, gen in run.generations.items() if after[s] != gen)
        report.kept_scopes = sorted(s for s, gen in run.generations.items() if after[s] == gen)
    report.seconds = time.monotonic() - run.started
    return report


class _Run:
    """One stream through the stack, with the plan's faults injected between its payloads."""

    def __init__(self, *, controls: Controls, plan: FaultPlan, log: Callable[[str], None]) -> None:
        needs = {
            "pause kafka": controls.pause_kafka and controls.resume_kafka,
            "pause valkey": controls.pause_valkey and controls.resume_valkey,
            "restart postgres": controls.restart_postgres,
            "restart master": controls.restart_master_empty and controls.master_ports,
        }
        for name in plan.order():
            if name in needs and not needs[name]:
                raise ValueError(f"{name}: the controls cannot do this fault")
        self.controls = controls
        self.plan = plan
        self.log = log
        self.report = Report()
        self.started = time.monotonic()
        self.background = _Background(self.started, log)
        self.accepted: dict[str, dict[str, Any]] = {}
        # Every scope's generation just before a master was restarted empty.
        self.generations: dict[str, bytes | None] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stream(
        self, body: list[dict[str, Any]], *, batch: int, resend_ratio: float, rate: float | None, seed: int
    ) -> None:
        rng = random.Random(seed + 1)
        batches = [body[i : i + batch] for i in range(0, len(body), batch)]
        order = self.plan.order()
        at: dict[int, list[str]] = defaultdict(list)
        for i, name in enumerate(order):
            at[round(len(batches) * (i + 1) / (len(order) + 1)) - 1].append(name)
        resends: list[dict[str, Any]] = []
        for index, chunk in enumerate(batches):
            if rate:  # payload n is due at n * batch / rate; one held back by a fault is sent at once after
                time.sleep(max(index * batch / rate - self.elapsed(), 0))
            resend_now = [e for e in resends if rng.random() < 0.5]
            resends = [e for e in resends if e not in resend_now]
            self.send(chunk + resend_now)
            resends += [e for e in chunk if rng.random() < resend_ratio]
            self.report.resent += len(resend_now)
            for name in at.get(index, ()):
                self.log(f"[{index + 1}/{len(batches)}] {name}")
                self.inject(Fault(name=name, batch=index + 1, at_s=self.elapsed()))
        if resends:
            self.send(resends)
            self.report.resent += len(resends)
        self.report.accepted = len(self.accepted)

    def send(self, payload: list[dict[str, Any]]) -> None:
        """POST until accepted; on 503 wait as asked and send the same event ids again (the client's duty)."""
        first_try = self.elapsed()
        while True:
            status, answer, retry_after = self.controls.post(payload)
            self.report.sent += len(payload)
            if status == 202:
                break
            if status != 503:
                raise RuntimeError(f"unexpected answer {status}: {json.dumps(answer)[:500]}")
            self.report.rejected_503 += 1
            code = str((answer.get("error") or {}).get("code", "no answer"))
            for fault in self.report.faults:
                if fault.name in LASTING and fault.overlaps(self.elapsed(), self.elapsed()):
                    fault.answers_503[code] += 1
            if self.elapsed() - first_try > RETRY_FOR_S:
                raise RuntimeError(f"still 503 after {RETRY_FOR_S:.0f}s: the stack did not recover")
            time.sleep(RETRY_DEFAULT_S if retry_after is None else retry_after)
        for fault in self.report.faults:
            if fault.name in LASTING and fault.overlaps(first_try, self.elapsed()):
                fault.longest_wait_s = max(fault.longest_wait_s, self.elapsed() - first_try)
        for event in payload:
            self.accepted[event["event_id"]] = event

    def inject(self, fault: Fault) -> None:
        controls, plan = self.controls, self.plan
        if fault.name in ("kill bridge", "kill worker"):
            bridge = fault.name == "kill bridge"
            killed = (controls.kill_bridge if bridge else controls.kill_worker)()
            (controls.start_bridge if bridge else controls.start_worker)()
            fault.detail = f"{killed or ''} (SIGKILL, restarted)".strip()
        elif fault.name == "wipe redis":
            controls.wipe_redis()
        elif fault.name == "pause kafka":
            assert controls.pause_kafka and controls.resume_kafka
            fault.detail = "(SIGSTOP, SIGCONT)"
            self.background.pause(fault, plan.pause_kafka_s, controls.pause_kafka, controls.resume_kafka)
        elif fault.name == "pause valkey":
            assert controls.pause_valkey and controls.resume_valkey
            fault.detail = "(SIGSTOP, SIGCONT)"
            self.background.pause(fault, plan.pause_valkey_s, controls.pause_valkey, controls.resume_valkey)
        elif fault.name == "restart postgres":
            restart, down_s = controls.restart_postgres, plan.restart_postgres_down_s
            assert restart is not None and down_s is not None
            fault.detail = f"(fast shutdown, {down_s:g}s down, start)"
            self.background.run(fault, lambda: restart(down_s))
        elif fault.name == "restart master":
            assert controls.restart_master_empty
            index, held, self.generations = master_choose(controls.master_ports, log=self.log)
            self.report.master_scopes = held
            fault.at_s = self.elapsed()
            fault.detail = f"{index} empty (it held {', '.join(held)})"
            controls.restart_master_empty(index)
        if fault.name not in LASTING:
            fault.until_s = self.elapsed()
        self.report.faults.append(fault)


def _retrying(what: Callable[[], Any], *, timeout: float, log: Callable[[str], None]) -> Any:
    """``what()``, retried while Postgres or Redis is away (a fault of this run)."""
    from django.db import DatabaseError, close_old_connections
    from redis.exceptions import RedisError

    deadline = time.monotonic() + timeout
    while True:
        close_old_connections()  # a restarted Postgres leaves this process's connection dead
        try:
            return what()
        except (DatabaseError, RedisError) as exc:
            if time.monotonic() > deadline:
                raise
            log(f"waiting for the stores: {exc.__class__.__name__}")
            time.sleep(1)


def scope_generations(scopes: list[str]) -> dict[str, bytes | None]:
    from core.redis import redis_client
    from leaderboard import keys as rk

    client = redis_client()
    return {scope: client.get(rk.ready_key(scope)) for scope in scopes}


def master_choose(
    ports: Sequence[int], *, log: Callable[[str], None]
) -> tuple[int, list[str], dict[str, bytes | None]]:
    """The master to restart (the one holding most scopes, while others hold some too), the
    scopes it holds, and every scope's generation now, once every scope is built (an earlier
    fault's rebuild must not be mistaken for this one's)."""
    from core.redis import redis_client
    from leaderboard import keys as rk
    from leaderboard.store import scopes_not_built
    from scoring.rebuild import all_scopes

    deadline = time.monotonic() + 120
    while _retrying(lambda: scopes_not_built(scopes=all_scopes()), timeout=60, log=log):
        if time.monotonic() > deadline:
            raise RuntimeError("scopes still not built after 120s; cannot tell a master's scopes apart")
        time.sleep(0.5)
    scopes = _retrying(all_scopes, timeout=60, log=log)
    client = redis_client()
    by_master: dict[int, list[str]] = defaultdict(list)
    for scope in scopes:
        by_master[list(ports).index(client.get_node_from_key(rk.ready_key(scope)).port)].append(scope)
    partial = [i for i in range(len(ports)) if 0 < len(by_master[i]) < len(scopes)]
    index = max(partial or range(len(ports)), key=lambda i: (len(by_master[i]), -i))
    return index, sorted(by_master[index]), scope_generations(scopes)


def settle(*, event_ids: list[str], timeout: float, log: Callable[[str], None]) -> bool:
    from django.db import connection

    from leaderboard.store import scopes_not_built
    from scoring.models import Batch
    from scoring.rebuild import all_scopes

    deadline = time.monotonic() + timeout
    last = ""

    def state() -> tuple[int, int, bool]:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM scoring_seenevent WHERE key = ANY(%s::uuid[])", [event_ids])
            seen = int(cur.fetchone()[0])
        pending = Batch.objects.filter(applied_at__isnull=True).count()
        return seen, pending, not scopes_not_built(scopes=all_scopes())

    while time.monotonic() < deadline:
        seen, pending, ready = _retrying(state, timeout=max(deadline - time.monotonic(), 1), log=log)
        line = f"claimed {seen}/{len(event_ids)} ids, {pending} batches pending, rankings built: {ready}"
        if line != last:
            log(line)
            last = line
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
    from scoring.selectors import counts_by_hour, window_anchor

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
    type_names = {t.id: name for name, t in types.items()}
    for (video_id, type_id, hour), (events, units) in counts_by_hour(video_ids={k[0] for k in truth}).items():
        actual[(video_id, type_names[type_id], hour)] = [events, units]
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
        for cid in set(category_of.values())
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
                # The category's lists: the global ones are their union (leaderboard.union).
                cid = category_of[vid]
                t0, hl = trend[cid]
                value = score * (2 ** ((epoch(minute) - t0) / hl) if window == "trending" else 1)
                expected[rk.ranking_key(window, cid)][vid] += value
    for cid in set(category_of.values()):
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


def http_poster(url: str, key: str) -> Callable[[list[dict[str, Any]]], Answer]:
    """POST event batches with an API key; no answer at all (refused, reset) reads as 503: retry the same ids."""
    host, port, path = loopback_address(url)
    client = Client(host, port, headers=api_key_headers(key))

    def post(events: list[dict[str, Any]]) -> Answer:
        try:
            response = client.post_json(path, {"events": events})
        except TRANSPORT_ERRORS:
            return 503, {}, None
        return response.status, response.json() or {}, response.retry_after()

    return post


def main() -> int:
    import signal
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--videos", type=int, default=500)
    parser.add_argument("--categories", type=int, default=5)
    parser.add_argument("--kills", type=int, default=4, help="SIGKILLs, alternating bridge and worker")
    parser.add_argument("--wipe", action=argparse.BooleanOptionalAction, default=True, help="wipe Redis once")
    parser.add_argument("--pause-kafka", type=float, default=10.0, metavar="S", help="pause the broker (0: not)")
    parser.add_argument("--restart-postgres", type=float, default=3.0, metavar="S",
                        help="restart PostgreSQL, S seconds down (negative: not)")  # fmt: skip
    parser.add_argument("--pause-valkey", type=float, default=6.0, metavar="S", help="pause Valkey (0: not)")
    parser.add_argument("--cluster", action="store_true", help="rankings on a 3-master Valkey cluster")
    parser.add_argument("--restart-master", action=argparse.BooleanOptionalAction, default=None,
                        help="restart one cluster master empty (default: with --cluster)")  # fmt: skip
    parser.add_argument("--bridges", type=int, default=None, help="bridge processes (default 2 with --cluster, else 1)")
    parser.add_argument("--workers", type=int, default=None, help="Celery workers (default 2 with --cluster, else 1)")
    parser.add_argument("--rate", type=float, default=250.0, help="events/s sent (0: as fast as accepted)")
    parser.add_argument("--resend", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    restart_master = args.cluster if args.restart_master is None else args.restart_master
    if restart_master and not args.cluster:
        parser.error("--restart-master needs --cluster")
    bridges = args.bridges or (2 if args.cluster else 1)
    workers = args.workers or (2 if args.cluster else 1)

    sys.path.insert(0, str(ROOT))
    import devstack

    data = ROOT / ".devdata" / ("faults-cluster" if args.cluster else "faults")
    stack = devstack.Stack(data, cluster=args.cluster)
    env = {**os.environ, **stack.up(), "DJANGO_SETTINGS_MODULE": "ranking_site.settings.base", "DEBUG": "false"}
    env["KAFKA_TOPIC"] = f"faults-{uuid.uuid4().hex[:8]}"
    env["KAFKA_SESSION_TIMEOUT_MS"] = "6000"
    env["THROTTLE_INGEST_PER_KEY"] = "1000000/min"
    env["THROTTLE_INGEST_PER_IP"] = "1000000/min"
    os.environ.update(env)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = data / "logs"
    if logs.exists():
        for old in logs.glob("*.log"):
            old.unlink()
    logs.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    commands = {
        "web": [py, "-m", "gunicorn", "ranking_site.wsgi:application", "-b", f"127.0.0.1:{args.port}", "-w", "2"],
        "beat": [py, "-m", "celery", "-A", "ranking_site", "beat", "-l", "warning",
                 "--schedule", str(logs / "beat-schedule")],
    }  # fmt: skip
    for i in range(1, bridges + 1):
        commands[f"bridge{i}"] = [py, "manage.py", "kafka_bridge", "--max-wait-ms", "50"]
    for i in range(1, workers + 1):
        commands[f"worker{i}"] = [py, "-m", "celery", "-A", "ranking_site", "worker", "--pool", "threads",
                                  "--concurrency", "4", "-Q", "batches,maintenance", "-l", "info", "-n", f"faults{i}-{os.getpid()}@%h"]  # fmt: skip
    # Each kill takes the next process of its kind in turn, so with two of a kind both die once.
    turns = {"bridge": 0, "worker": 0}
    killed: dict[str, str] = {}

    def start(name: str) -> None:
        with open(logs / f"{name}.log", "ab") as out:
            procs[name] = subprocess.Popen(commands[name], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(kind: str) -> str:
        name = f"{kind}{turns[kind] % (bridges if kind == 'bridge' else workers) + 1}"
        turns[kind] += 1
        procs[name].send_signal(signal.SIGKILL)
        procs[name].wait()
        killed[kind] = name
        return name

    try:
        # A fresh database each run: the folder is the harness's own, and a schema left by an
        # older checkout (initial migrations are edited in place) would not migrate.
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=stack.load()["postgres"]["port"], user=devstack.PG_USER)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{devstack.PG_DB}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{devstack.PG_DB}"')
        admin.close()
        subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        import redis
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.db import connection
        from kafka import KafkaConsumer

        from core.kafka import topic_ensure
        from core.redis import redis_client
        from events.models import ApiKey
        from scoring.rebuild import rankings_rebuild
        from videos.models import Category, Video

        def wipe() -> None:
            redis_client().flushall()
            if args.cluster:  # the Celery queues and the cache live on the plain node
                redis.Redis.from_url(settings.CELERY_BROKER_URL).flushall()

        wipe()
        owner, _ = User.objects.get_or_create(username="faults")
        cats = [
            Category.objects.get_or_create(slug=f"faults-{i}", defaults={"name": f"Faults {i}"})[0]
            for i in range(args.categories)
        ]
        videos = Video.objects.bulk_create(
            Video(
                title=f"Fault video {i}",
                category=cats[i % len(cats)],
                owner=owner,
                duration_seconds=30 + i % 600,
            )
            for i in range(args.videos)
        )
        connection.close()
        rankings_rebuild()
        topic_ensure()
        probe = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
        partitions = 0
        for _ in range(50):  # the new topic's metadata may take a moment to show
            partitions = len(probe.partitions_for_topic(settings.KAFKA_TOPIC) or ())
            if partitions:
                break
            time.sleep(0.1)
        probe.close()
        print(f"topic {settings.KAFKA_TOPIC}: {partitions} partitions; {bridges} bridge(s), {workers} worker(s)")
        _, key = ApiKey.objects.create_key(name="faults")
        for name in commands:
            start(name)
        # The faults are meant for a pipeline that is moving, not for processes still starting.
        deadline = time.monotonic() + 120
        for name in commands:
            mark = (
                "assigned partitions" if name.startswith("bridge") else " ready." if name.startswith("worker") else ""
            )
            while mark not in (logs / f"{name}.log").read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start within 120s; see {logs / name}.log")
                time.sleep(0.2)

        controls = Controls(
            post=http_poster(f"http://127.0.0.1:{args.port}/api/v1/events/", key),
            kill_bridge=lambda: kill("bridge"),
            start_bridge=lambda: start(killed["bridge"]),
            kill_worker=lambda: kill("worker"),
            start_worker=lambda: start(killed["worker"]),
            wipe_redis=wipe,
            pause_kafka=lambda: stack.pause("tansu"),
            resume_kafka=lambda: stack.resume("tansu"),
            pause_valkey=lambda: stack.pause("valkey"),
            resume_valkey=lambda: stack.resume("valkey"),
            restart_postgres=stack.postgres_restart,
            restart_master_empty=stack.cluster_restart_empty,
            master_ports=[node["port"] for node in stack.load().get("cluster", [])],
            exited=lambda: [f"{n} exited with code {p.returncode}" for n, p in procs.items() if p.poll() is not None],
        )
        report = harness_run(
            controls=controls,
            video_ids=[v.id for v in videos],
            durations={v.id: v.duration_seconds for v in videos},
            events=args.events,
            resend_ratio=args.resend,
            kills=args.kills,
            wipe=args.wipe,
            pause_kafka_s=args.pause_kafka,
            restart_postgres_down_s=args.restart_postgres if args.restart_postgres >= 0 else None,
            pause_valkey_s=args.pause_valkey,
            restart_master=restart_master,
            rate=args.rate or None,
            seed=args.seed,
            settle_timeout=300,
        )
        print("\n".join(report.lines()))
        print("what the processes logged about the faults (warnings and errors, by kind):")
        for line in log_summary(logs):
            print(f"  {line}")
        print("rebuilds:")
        for line in rebuild_log_lines(logs):
            print(f"  {line}")
        return 0 if report.ok else 1
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


def log_summary(logs: Path) -> list[str]:
    """Each process's warnings and errors, counted by kind (numbers and ids blanked out)."""
    import re

    blank = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?")
    lines = []
    for path in sorted(logs.glob("*.log")):
        kinds: Counter[str] = Counter()
        for raw in path.read_text(errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict) or line.get("level") not in ("WARNING", "ERROR", "CRITICAL"):
                continue
            message = str(line.get("message", "")).splitlines()[0] if line.get("message") else ""
            kinds[f"{line['level'].lower()}: {blank.sub('#', message)[:110]}"] += 1
        lines += [f"{path.stem}: {n} x {kind}" for kind, n in kinds.most_common()]
    return lines


def rebuild_log_lines(logs: Path) -> list[str]:
    """The workers' "rankings rebuilt" lines: which scopes each rebuild swapped in."""
    found = []
    for path in sorted(logs.glob("worker*.log")):
        for raw in path.read_text(errors="replace").splitlines():
            if "rankings rebuilt" not in raw and "rankings not built" not in raw:
                continue
            try:
                line = json.loads(raw)
                found.append(f"{line['ts'][11:23]} {path.stem}: {line['message']}")
            except (ValueError, KeyError):
                found.append(f"{path.stem}: {raw}")
    return sorted(found)


if __name__ == "__main__":
    sys.exit(main())
