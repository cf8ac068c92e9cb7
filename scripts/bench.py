"""Benchmark of the whole pipeline against the embedded real servers (``make bench``).

Starts its own PostgreSQL, Valkey and Tansu (scripts/devstack.py, folder
``.devdata/bench``), a fresh ``bench`` database, and the production process
shape: gunicorn, ``manage.py kafka_bridge`` and a Celery worker as separate
processes. Then, in one run:

1. ingest: events/s from HTTP POST (batches of 500, several client processes)
   until every event is counted and applied to the sorted sets; CPU per component;
2. freshness: POST accepted -> score changed in ``GET /rankings/videos/<id>/``
   under a steady 1,000 events/s background load;
3. reads: ``/rankings/?window=day&limit=20`` and ``/rankings/videos/<id>/`` with
   wrk (closed loop for the maximum, paced at 500 req/s for latency);
4. rebuild: ``manage.py reindex`` time and Valkey memory per ranked video;
5. side by side: the naive Postgres design (a row per event, GROUP BY at read
   time) and the ``leaderboard`` library (one ZINCRBY per event).

Every figure is the median of several runs (3; ``--quick``: 2 on a smaller data
set). Results go to a table on stdout, ``docs/benchmarks.md`` (this mode's
section only; the hand-written parts stay) and ``docs/benchmarks.png``.

    python scripts/bench.py            # 1,000,000 videos, about 25 minutes
    python scripts/bench.py --quick    # 100,000 videos, under 3 minutes
"""

from __future__ import annotations

import argparse
import functools
import http.client
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from tqdm import tqdm

from core.redis import redis_client

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the project's packages are importable
    sys.path.insert(0, str(ROOT))
BENCH_DIR = ROOT / ".devdata" / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"
BIN = Path(sys.executable).parent
BENCH_DB = "bench"
LEADERBOARD_DB = 5  # Valkey database for the leaderboard library's keys
LEADERBOARD_PINS = ("leaderboard==3.7.3", "redis==2.10.6")

# Process layout on the 2-core machine; every process below shares those cores
# with the servers and the load generator, so counts stay small: more processes
# than cores only add context switches. See docs/benchmarks.md for the reasoning.
WEB_WORKERS = 4
WEB_THREADS = 1
CELERY_POOL = "prefork"
CELERY_CONCURRENCY = 2
INGEST_CLIENTS = 2
BATCH = 500
READ_WARMUP_S = 5.0  # per read endpoint, before the read runs

# Targets, printed beside the measured values; the benchmark reports, it does not fail.
TARGETS = {
    "ingest": 10_000.0,  # events/s end to end, at least
    "fresh_p99_ms": 1000.0,  # at 1,000 events/s, at most
    "top20_p99_ms": 20.0,  # at >= 500 req/s, at most
    "top20_rate": 500.0,
    "reindex_s": 60.0,  # 1,000,000 videos, at most
    "naive_top20_x": 30.0,  # times faster than the naive top-20 query, at least
    "lib_update_x": 3.0,  # times the per-event leaderboard library's update rate, at least
}

TYPE_MIX = (("view", 60.0), ("watch", 24.0), ("like", 10.0), ("comment", 4.0), ("share", 2.0))


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int
    videos: int
    users: int
    events: int
    zipf: float
    ingest_s: float
    fresh_s: float
    read_s: float
    naive_ingest_s: float
    naive_samples: int
    lib_s: float
    reads_in_process: int


FULL = Profile(
    name="full", runs=3, videos=1_000_000, users=100_000, events=10_000_000, zipf=0.7,
    ingest_s=20.0, fresh_s=20.0, read_s=10.0, naive_ingest_s=5.0, naive_samples=5, lib_s=10.0,
    reads_in_process=2000,
)  # fmt: skip
QUICK = Profile(
    name="quick", runs=2, videos=100_000, users=20_000, events=1_000_000, zipf=0.7,
    ingest_s=6.0, fresh_s=6.0, read_s=3.0, naive_ingest_s=2.0, naive_samples=3, lib_s=3.0,
    reads_in_process=500,
)  # fmt: skip


# --- small helpers -------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the runs of every numeric value (others: the first run's)."""
    out: dict[str, Any] = {}
    for key in runs[0] if runs else {}:
        values = [r[key] for r in runs if key in r]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = statistics.median(values)
        elif all(isinstance(v, dict) for v in values):
            out[key] = median_of(values)
        else:
            out[key] = values[0]
    return out


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def timed_bar(seconds: float, desc: str) -> Iterator[None]:
    """A bar that fills with wall time while the body runs in other processes."""
    stop = threading.Event()
    bar = tqdm(total=round(seconds, 1), desc=desc, unit="s", file=sys.stderr, leave=False, disable=None,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s")  # fmt: skip
    started = time.monotonic()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.n = min(round(time.monotonic() - started, 1), bar.total)
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


# --- processes and CPU accounting ----------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants, including reaped children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        with suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


class Service:
    """A child process of the benchmark in its own session; stopped by pid only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if regex.search(self.output()):
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}); see {self.log_path}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            children = []
            with suppress(psutil.Error):
                children = psutil.Process(self.pid).children(recursive=True)
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
            # Children the parent did not take down with it (prefork workers, gunicorn workers).
            for child in children:
                with suppress(psutil.Error):
                    if child.is_running():
                        child.kill()
        self.log.close()


# --- the servers ------------------------------------------------------------------------


def _devstack() -> Any:
    spec = importlib.util.spec_from_file_location("devstack", ROOT / "scripts" / "devstack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["devstack"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def database_recreate(base_url: str, name: str) -> str:
    """A fresh database on the bench server: every run starts from the same state."""
    import psycopg2

    prefix, _, _ = base_url.rpartition("/")
    host_port = prefix.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    conn = psycopg2.connect(host=host, port=int(port), user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"{prefix}/{name}"


def server_pids(stack: Any) -> dict[str, int]:
    state = stack.load()
    pids = {"valkey": int(state["valkey"]["pid"]), "tansu": int(state["tansu"]["pid"])}
    pg = stack._pg_pid(stack.root / "postgres")
    if pg:
        pids["postgres"] = int(pg)
    return pids


# --- synthetic client traffic -----------------------------------------------------------


@dataclass
class Traffic:
    """Published videos with Zipf-like popularity and the event-type mix of the seed."""

    video_ids: list[int]
    cum: list[float]
    durations: dict[int, int]
    weights: dict[str, float]
    type_ids: dict[str, int]

    @classmethod
    def load(cls, *, zipf: float, exclude: set[int] | None = None, seed: int = 7) -> Traffic:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SELECT id, duration_seconds FROM videos_video WHERE status = 'published' ORDER BY id")
            rows = cur.fetchall()
            cur.execute("SELECT name, weight, id FROM events_eventtype")
            types = cur.fetchall()
        weights = {str(n): float(w) for n, w, _ in types}
        ids = [int(r[0]) for r in rows if not exclude or r[0] not in exclude]
        random.Random(seed).shuffle(ids)
        cum: list[float] = []
        total = 0.0
        for rank in range(1, len(ids) + 1):
            total += 1.0 / rank**zipf
            cum.append(total)
        durations = {int(r[0]): int(r[1]) for r in rows}
        type_ids = {str(n): int(i) for n, _, i in types}
        return cls(video_ids=ids, cum=cum, durations=durations, weights=weights, type_ids=type_ids)


TYPE_NAMES = [t for t, _ in TYPE_MIX]
TYPE_CUM = [sum(w for _, w in TYPE_MIX[: i + 1]) for i in range(len(TYPE_MIX))]


def events_body(traffic: Traffic, rng: random.Random, n: int, user_prefix: str, seq: int) -> bytes:
    """A POST body of ``n`` events. Every event has its own user id, so none is a dedupe repeat
    and the counters must grow by exactly what was accepted."""
    vids = rng.choices(traffic.video_ids, cum_weights=traffic.cum, k=n)
    kinds = rng.choices(TYPE_NAMES, cum_weights=TYPE_CUM, k=n)
    parts = []
    for i in range(n):
        if kinds[i] == "watch":
            seconds = 5 + rng.random() * 300
            parts.append(
                f'{{"video_id":{vids[i]},"type":"watch","watch_seconds":{seconds:.1f},"user_id":"{user_prefix}{seq + i}"}}'
            )
        else:
            parts.append(f'{{"video_id":{vids[i]},"type":"{kinds[i]}","user_id":"{user_prefix}{seq + i}"}}')
    return ('{"events":[' + ",".join(parts) + "]}").encode()


@dataclass
class ClientResult:
    events: int = 0
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0


def _post_loop(
    *, port: int, api_key: str, traffic: Traffic, seed: int, prefix: str, deadline: float, batch: int,
    interval: float | None, out: Any,
) -> None:  # fmt: skip
    """One client process: POST batches until the deadline (back to back, or one per ``interval``)."""
    rng = random.Random(seed)
    result = ClientResult()
    headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {api_key}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    seq = 0
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if interval is not None:
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
        body = events_body(traffic, rng, batch, prefix, seq)
        started = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/events/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        result.latencies.append(time.perf_counter() - started)
        result.requests += 1
        if response.status == 202:
            result.events += batch
            seq += batch
        else:
            result.errors[str(response.status)] = result.errors.get(str(response.status), 0) + 1
    conn.close()
    times = os.times()
    result.cpu_s = times.user + times.system
    out.put(result)


def post_clients(
    *, port: int, api_key: str, traffic: Traffic, clients: int, seconds: float, batch: int = BATCH,
    rate: float | None = None, tag: str = "",
) -> tuple[list[Any], Any, float]:  # fmt: skip
    """Start client processes (fork: they share the traffic tables without copying)."""
    from django.db import connections

    connections.close_all()  # a forked child must not share the parent's database sockets
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    deadline = time.monotonic() + seconds
    interval = None if rate is None else batch * clients / rate
    procs = []
    run = uuid.uuid4().hex[:6]
    for i in range(clients):
        kwargs = dict(port=port, api_key=api_key, traffic=traffic, seed=hash((run, i)) & 0xFFFFFFF,
                      prefix=f"b{tag}{run}{i}-", deadline=deadline, batch=batch, interval=interval, out=queue)  # fmt: skip
        proc = ctx.Process(target=_post_loop, kwargs=kwargs, daemon=True)
        proc.start()
        procs.append(proc)
    return procs, queue, deadline


def clients_join(procs: list[Any], queue: Any) -> ClientResult:
    total = ClientResult()
    for _ in procs:
        r: ClientResult = queue.get(timeout=120)
        total.events += r.events
        total.requests += r.requests
        total.latencies.extend(r.latencies)
        total.cpu_s += r.cpu_s
        for k, v in r.errors.items():
            total.errors[k] = total.errors.get(k, 0) + v
    for proc in procs:
        proc.join(10)
    return total


# --- 1. ingest --------------------------------------------------------------------------


def db_now() -> datetime:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT statement_timestamp()")
        moment: datetime = cur.fetchone()[0]
        return moment


def counted_since(since: datetime) -> tuple[int, int]:
    """(events counted and applied to Redis, batches not yet applied) for batches received since."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT COALESCE(SUM(counted) FILTER (WHERE applied_at IS NOT NULL), 0),
                   COUNT(*) FILTER (WHERE applied_at IS NULL)
            FROM scoring_batch WHERE source = 'kafka' AND received_at >= %s
            """,
            [since],
        )
        done, pending = cur.fetchone()
    return int(done), int(pending)


def wait_applied(since: datetime, expected: int, timeout: float, desc: str = "draining") -> tuple[float, int]:
    """Poll until ``expected`` events since ``since`` are counted and in the sorted sets."""
    bar = tqdm(total=expected, desc=desc, unit="ev", unit_scale=True, file=sys.stderr, leave=False, disable=None)
    deadline = time.monotonic() + timeout
    done = 0
    try:
        while time.monotonic() < deadline:
            done, _ = counted_since(since)
            bar.n = min(done, expected)
            bar.refresh()
            if done >= expected:
                return time.monotonic(), done
            time.sleep(0.05)
    finally:
        bar.close()
    return time.monotonic(), done


def ingest_run(
    *, port: int, api_key: str, traffic: Traffic, clients: int, seconds: float, cpu_pids: dict[str, int],
    drain_timeout: float = 300.0, batch: int = BATCH,
) -> dict[str, Any]:  # fmt: skip
    """Events/s end to end: first POST to the last event applied to the sorted sets."""
    since = db_now()
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in cpu_pids.items()}
    machine_before = machine_cpu_seconds()
    started = time.monotonic()
    procs, queue, _ = post_clients(
        port=port, api_key=api_key, traffic=traffic, clients=clients, seconds=seconds, batch=batch
    )
    with timed_bar(seconds, "posting"):
        result = clients_join(procs, queue)
    load_end = time.monotonic()
    finished, counted = wait_applied(since, result.events, drain_timeout)
    cpu_after = {name: tree_cpu_seconds(pid) for name, pid in cpu_pids.items()}
    wall = finished - started
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_pids}
    cpu["load generator"] = result.cpu_s
    # Whatever else ran on the machine meanwhile: the figures above are only as clean as this is small.
    cpu["other processes"] = max(machine_cpu_seconds() - machine_before - sum(cpu.values()), 0.0)
    per_k = {name: 1000.0 * s / max(counted, 1) for name, s in cpu.items()}
    share = {name: 100.0 * s / wall for name, s in cpu.items()}
    return {
        "events": result.events,
        "counted": counted,
        "complete": counted >= result.events,
        "requests": result.requests,
        "errors": sum(result.errors.values()),
        "error_kinds": result.errors,
        "post_seconds": load_end - started,
        "drain_seconds": finished - load_end,
        "wall_seconds": wall,
        "accepted_per_s": result.events / (load_end - started),
        "end_to_end_per_s": counted / wall,
        "post_p50_ms": percentile(result.latencies, 50) * 1000,
        "post_p99_ms": percentile(result.latencies, 99) * 1000,
        "cpu_s_per_1k": per_k,
        "cpu_core_pct": share,
        "cpu_total_pct": sum(v for k, v in share.items() if k != "other processes"),
    }


# --- 2. freshness -------------------------------------------------------------------------


def _get_json(conn: http.client.HTTPConnection, path: str) -> tuple[int, Any]:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    return response.status, (json.loads(body) if body else None)


def _video_score(conn: http.client.HTTPConnection, video_id: int) -> float | None:
    status, data = _get_json(conn, f"/api/v1/rankings/videos/{video_id}/")
    if status != 200:
        raise RuntimeError(f"GET /rankings/videos/{video_id}/ answered {status}: {data}")
    score = data["standings"]["all"]["global"]["score"]
    return None if score is None else float(score)


def freshness_probe(
    *, port: int, api_key: str, probe_ids: list[int], deadline: float, poll_s: float = 0.01, timeout: float = 10.0
) -> tuple[list[float], int]:
    """POST one like for a probe video, then poll its standing until the score moves.

    Probe videos get no background traffic, so the first change seen is the probe's own event.
    Returns (latencies in seconds, probes that never showed up within ``timeout``).
    """
    rng = random.Random(11)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {api_key}"}
    latencies: list[float] = []
    lost = 0
    while time.monotonic() < deadline:
        vid = rng.choice(probe_ids)
        before = _video_score(conn, vid)
        body = json.dumps({"video_id": vid, "type": "like", "user_id": f"probe-{uuid.uuid4().hex}"}).encode()
        conn.request("POST", "/api/v1/events/", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        accepted = time.perf_counter()
        if response.status != 202:
            raise RuntimeError(f"probe POST answered {response.status}")
        while True:
            if _video_score(conn, vid) != before:
                latencies.append(time.perf_counter() - accepted)
                break
            if time.perf_counter() - accepted > timeout:
                lost += 1
                break
            time.sleep(poll_s)
        time.sleep(rng.uniform(0.05, 0.15))  # probes are spread out, not back to back
    conn.close()
    return latencies, lost


def freshness_run(
    *, port: int, api_key: str, traffic: Traffic, probe_ids: list[int], seconds: float, rate: float = 1000.0,
    batch: int = 100,
) -> dict[str, Any]:  # fmt: skip
    since = db_now()
    procs, queue, deadline = post_clients(
        port=port, api_key=api_key, traffic=traffic, clients=1, seconds=seconds, batch=batch, rate=rate, tag="f"
    )
    with timed_bar(seconds, "probing"):
        latencies, lost = freshness_probe(port=port, api_key=api_key, probe_ids=probe_ids, deadline=deadline)
        background = clients_join(procs, queue)
    wait_applied(since, background.events + len(latencies) + lost, 60.0)
    elapsed = seconds
    return {
        "background_per_s": background.events / elapsed,
        "background_errors": sum(background.errors.values()),
        "probes": len(latencies),
        "lost": lost,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


# --- 3. reads -----------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = {%(paths)s}
local pause = %(pause)s
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
if pause > 0 then
  delay = function() return pause end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"p50_us\\":%%d,\\"p99_us\\":%%d,\\"errors\\":%%d,\\"non2xx\\":%%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_run(*, port: int, paths: list[str], connections: int, seconds: float, pause_ms: float = 0.0) -> dict[str, Any]:
    script = BENCH_DIR / "wrk" / f"{uuid.uuid4().hex[:8]}.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    sample = [rng.choice(paths) for _ in range(min(5000, max(len(paths), 1)))]
    script.write_text(WRK_SCRIPT % {"paths": ",".join(json.dumps(p) for p in sample), "pause": int(pause_ms)})
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
            f"http://127.0.0.1:{port}"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    script.unlink(missing_ok=True)
    match = re.search(r"BENCH_JSON (\{.*\})", proc.stdout)
    if not match:
        raise RuntimeError(f"wrk gave no result: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    data = json.loads(match.group(1))
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": data["errors"] + data["non2xx"],
        "connections": connections,
    }


def _py_http_worker(port: int, paths: list[str], threads: int, deadline: float, pause_s: float, out: Any) -> None:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def loop(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        i = offset
        while time.monotonic() < deadline:
            path = paths[i % len(paths)]
            i += 7
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[0] += 1
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            mine.append(time.perf_counter() - started)
            if pause_s:
                time.sleep(pause_s)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop, args=(n * 1009,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((latencies, errors[0]))


def py_http_run(
    *, port: int, paths: list[str], connections: int, seconds: float, pause_ms: float = 0.0
) -> dict[str, Any]:
    """Fallback when wrk cannot be installed: keep-alive connections spread over two processes."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs_n = min(2, connections)
    started = time.monotonic()
    deadline = started + seconds
    procs = [
        ctx.Process(
            target=_py_http_worker, args=(port, paths, max(1, connections // procs_n), deadline, pause_ms / 1000, queue)
        )
        for _ in range(procs_n)
    ]
    for p in procs:
        p.start()
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        lat, err = queue.get(timeout=seconds + 60)
        latencies.extend(lat)
        errors += err
    for p in procs:
        p.join(10)
    elapsed = time.monotonic() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
        "connections": connections,
    }


def http_load(
    *, port: int, paths: list[str], connections: int, seconds: float, pause_ms: float = 0.0
) -> dict[str, Any]:
    runner = wrk_run if wrk_available() else py_http_run
    return runner(port=port, paths=paths, connections=connections, seconds=seconds, pause_ms=pause_ms)


def reads_run(*, port: int, paths: list[str], seconds: float, target_rate: float = 500.0) -> dict[str, Any]:
    """Closed loop for the most requests/s, then paced at ``target_rate`` for the latency there."""
    closed = http_load(port=port, paths=paths, connections=2 * WEB_WORKERS * WEB_THREADS, seconds=seconds)
    # Enough connections that the rate depends little on each answer's time (wrk waits per connection).
    paced_conns = 32
    # Each connection waits ``pause`` after every answer; aiming a little high makes up for the answer time.
    pause = max(1.0, paced_conns * 1000.0 / (target_rate * 1.1) - closed["p50_ms"])
    paced = http_load(port=port, paths=paths, connections=paced_conns, seconds=seconds, pause_ms=pause)
    return {
        "max_rps": closed["rps"],
        "max_p50_ms": closed["p50_ms"],
        "max_p99_ms": closed["p99_ms"],
        "max_connections": closed["connections"],
        "paced_rps": paced["rps"],
        "paced_p50_ms": paced["p50_ms"],
        "paced_p99_ms": paced["p99_ms"],
        "errors": closed["errors"] + paced["errors"],
    }


def in_process_reads(*, video_ids: list[int], samples: int) -> dict[str, Any]:
    """The same reads as the API, called in-process: what the naive SQL and the library are compared with."""
    from rankings.selectors import ranking_standings, ranking_top

    rng = random.Random(5)
    top: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        ranking_top(window="day", limit=20)
        top.append(time.perf_counter() - started)
    rank: list[float] = []
    for _ in range(samples):
        vid = rng.choice(video_ids)
        started = time.perf_counter()
        ranking_standings(video_id=vid)
        rank.append(time.perf_counter() - started)
    return {
        "top20_p50_ms": percentile(top, 50) * 1000,
        "top20_p99_ms": percentile(top, 99) * 1000,
        "rank_p50_ms": percentile(rank, 50) * 1000,
        "rank_p99_ms": percentile(rank, 99) * 1000,
    }


# --- 4. rebuild ---------------------------------------------------------------------------


def valkey_wait_loaded(client: Any, timeout: float = 300.0) -> None:
    """A restarted Valkey first loads its last snapshot and answers LOADING until then."""
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.BusyLoadingError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def redis_used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def reindex_run(*, env: dict[str, str], client: Any, fresh: bool) -> dict[str, Any]:
    """``manage.py reindex``: wall time of the command; Valkey memory when starting from empty."""
    from leaderboard import keys as rk

    out: dict[str, Any] = {}
    if fresh:
        # SYNC: Valkey may free a flushed database in the background, which would
        # leave the old data in the baseline and understate the rebuild's memory.
        client.execute_command("FLUSHDB", "SYNC")
        while int(client.info("memory").get("lazyfree_pending_objects", 0)):
            time.sleep(0.1)
        before = redis_used_memory(client)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "python"), "manage.py", "reindex"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    out["wall_s"] = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"reindex failed: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    match = re.search(r"; ([0-9.]+)s\s*$", proc.stdout.strip())
    out["rebuild_s"] = float(match.group(1)) if match else out["wall_s"]
    out["ranked_all"] = int(client.zcard(rk.ranking_key("all")))
    out["ranked_day"] = int(client.zcard(rk.ranking_key("day")))
    if fresh:
        after = redis_used_memory(client)
        out["memory_bytes"] = after - before
        out["bytes_per_ranked_video"] = (after - before) / max(out["ranked_all"], 1)
    return out


# --- 5a. the naive Postgres design ----------------------------------------------------------

NAIVE_DDL = """
CREATE TABLE IF NOT EXISTS bench_naive_event (
    id bigserial PRIMARY KEY,
    video_id bigint NOT NULL,
    event_type_id integer NOT NULL,
    user_id varchar(64) NOT NULL DEFAULT '',
    weight double precision NOT NULL,
    occurred_at timestamptz NOT NULL
)
"""
NAIVE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS bench_naive_event_video_time ON bench_naive_event (video_id, occurred_at)",
    "CREATE INDEX IF NOT EXISTS bench_naive_event_time ON bench_naive_event (occurred_at)",
)
NAIVE_TOP20 = """
WITH top AS (
    SELECT video_id, SUM(weight) AS score FROM bench_naive_event
    WHERE occurred_at >= now() - interval '1 day'
    GROUP BY video_id ORDER BY 2 DESC LIMIT 20
)
SELECT top.video_id, top.score, v.title, c.slug, u.username, v.thumbnail_url, v.duration_seconds, v.published_at
FROM top JOIN videos_video v ON v.id = top.video_id
JOIN videos_category c ON c.id = v.category_id JOIN auth_user u ON u.id = v.owner_id
ORDER BY top.score DESC
"""
NAIVE_RANK = """
SELECT rank, score FROM (
    SELECT video_id, SUM(weight) AS score, RANK() OVER (ORDER BY SUM(weight) DESC) AS rank
    FROM bench_naive_event WHERE occurred_at >= now() - interval '1 day'
    GROUP BY video_id
) ranked WHERE video_id = %s
"""


@functools.cache
def naive_model() -> Any:
    """The model a first version would have: one row per event, written with ``.create()``."""
    from django.db import models

    class BenchNaiveEvent(models.Model):
        video_id = models.BigIntegerField()
        event_type_id = models.IntegerField()
        user_id = models.CharField(max_length=64, blank=True, default="")
        weight = models.FloatField()
        occurred_at = models.DateTimeField()

        class Meta:
            app_label = "events"
            managed = False  # a benchmark-only table, created by raw SQL
            db_table = "bench_naive_event"

        def __str__(self) -> str:
            return f"{self.event_type_id} on video {self.video_id}"

    return BenchNaiveEvent


def naive_load() -> dict[str, Any]:
    """One row per counted event, generated server-side from the hourly counters, indexes built after."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(NAIVE_DDL)
        cur.execute("DROP INDEX IF EXISTS bench_naive_event_video_time")
        cur.execute("DROP INDEX IF EXISTS bench_naive_event_time")
        cur.execute("TRUNCATE bench_naive_event RESTART IDENTITY")
        # Each counter row becomes `events` rows spread over its hour; a watch row's units are shared out.
        cur.execute(
            """
            INSERT INTO bench_naive_event (video_id, event_type_id, weight, occurred_at)
            SELECT c.video_id, c.event_type_id, e.weight * c.units / c.events,
                   LEAST(c.hour + random() * interval '1 hour', now())
            FROM scoring_hourlycounter c JOIN events_eventtype e ON e.id = c.event_type_id,
                 generate_series(1, c.events)
            WHERE c.events > 0
            """
        )
        rows = cur.rowcount
        for ddl in NAIVE_INDEXES:
            cur.execute(ddl)
    old = connection.autocommit
    connection.set_autocommit(True)
    try:
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE bench_naive_event")  # visibility map and statistics, as a DBA would
    finally:
        connection.set_autocommit(old)
    return {"rows": rows, "load_s": time.perf_counter() - started}


def _naive_insert_loop(traffic: Traffic, seed: int, deadline: float, out: Any) -> None:
    from django.db import connection
    from django.utils import timezone

    model = naive_model()
    rng = random.Random(seed)
    n = 0
    while time.monotonic() < deadline:
        vids = rng.choices(traffic.video_ids, cum_weights=traffic.cum, k=100)
        kinds = rng.choices(TYPE_NAMES, cum_weights=TYPE_CUM, k=100)
        for vid, kind in zip(vids, kinds, strict=True):
            model.objects.create(
                video_id=vid, event_type_id=traffic.type_ids[kind], user_id=f"n{seed}-{n}", weight=traffic.weights.get(kind, 1.0),
                occurred_at=timezone.now(),
            )  # fmt: skip
            n += 1
    connection.close()
    out.put(n)


def naive_ingest_run(*, traffic: Traffic, seconds: float, processes: int = INGEST_CLIENTS) -> dict[str, Any]:
    """Per-event ORM ``.create()`` from several processes (no HTTP in front: generous to the naive design)."""
    from django.db import connection, connections

    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM bench_naive_event")
        last_id = int(cur.fetchone()[0])
    connections.close_all()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    started = time.monotonic()
    deadline = started + seconds
    procs = [ctx.Process(target=_naive_insert_loop, args=(traffic, 100 + i, deadline, queue)) for i in range(processes)]
    for p in procs:
        p.start()
    with timed_bar(seconds, "naive inserts"):
        inserted = sum(int(queue.get(timeout=seconds + 60)) for _ in procs)
    for p in procs:
        p.join(10)
    elapsed = time.monotonic() - started
    with connection.cursor() as cur:  # keep the table at the seed's event count for the reads
        cur.execute("DELETE FROM bench_naive_event WHERE id > %s", [last_id])
    return {"inserts_per_s": inserted / elapsed, "inserted": inserted}


def naive_reads_run(*, video_ids: list[int], samples: int) -> dict[str, Any]:
    from django.db import connection

    rng = random.Random(9)
    top: list[float] = []
    rank: list[float] = []
    with connection.cursor() as cur:
        for _ in range(samples):
            started = time.perf_counter()
            cur.execute(NAIVE_TOP20)
            cur.fetchall()
            top.append(time.perf_counter() - started)
        for _ in range(samples):
            started = time.perf_counter()
            cur.execute(NAIVE_RANK, [rng.choice(video_ids)])
            cur.fetchall()
            rank.append(time.perf_counter() - started)
    return {
        "top20_p50_ms": percentile(top, 50) * 1000,
        "top20_p99_ms": percentile(top, 99) * 1000,
        "rank_p50_ms": percentile(rank, 50) * 1000,
        "rank_p99_ms": percentile(rank, 99) * 1000,
    }


# --- 5b. the leaderboard library ---------------------------------------------------------------


def leaderboard_venv() -> Path | None:
    """The library's own virtualenv (it needs redis-py 2.x); created once, reused after."""
    venv = BENCH_DIR / "leaderboard-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(LEADERBOARD_PINS):
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *LEADERBOARD_PINS], check=True,
                       capture_output=True, timeout=600)  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        say(f"  leaderboard virtualenv could not be made ({exc}); comparison skipped")
        return None
    stamp.write_text(" ".join(LEADERBOARD_PINS))
    return python


def leaderboard_stream(traffic: Traffic, path: Path, events: int) -> None:
    """The ingest traffic as 'member delta' lines: the score each event adds (weight x units)."""
    from leaderboard.keys import member

    rng = random.Random(21)
    vids = rng.choices(traffic.video_ids, cum_weights=traffic.cum, k=events)
    kinds = rng.choices(TYPE_NAMES, cum_weights=TYPE_CUM, k=events)
    with path.open("w") as handle:
        for vid, kind in zip(vids, kinds, strict=True):
            delta = traffic.weights.get(kind, 1.0)
            if kind == "watch":
                delta *= min((5 + rng.random() * 300) / max(traffic.durations.get(vid, 1), 1), 1.0)
            handle.write(f"{member(vid)} {delta!r}\n")


def leaderboard_run(
    *, python: Path, port: int, stream: Path, seconds: float, skip: int, fill: bool, reads: int
) -> dict[str, Any]:
    argv = [str(python), str(ROOT / "scripts" / "bench_leaderboard.py"), "--port", str(port), "--db",
            str(LEADERBOARD_DB), "--events", str(stream), "--seconds", str(seconds), "--skip", str(skip),
            "--reads", str(reads)]  # fmt: skip
    if fill:
        argv.append("--fill")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 900)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_leaderboard failed: {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def valkey_cpu_s(client: Any) -> float:
    """Valkey's own CPU time so far (user + system, main and background threads)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_stage_run(*, stream: Path, seconds: float, batch: int = BATCH) -> dict[str, Any]:
    """Our Redis update stage on the library's event stream, like for like with ``change_score_for``.

    The worker's last step, alone: each batch of ``batch`` events is summed per (video, hour) with
    its window mask, exactly as ``events.services`` builds a batch's deltas, and applied with
    ``rankings.services.deltas_apply`` (one ``APPLY`` Lua call per batch: every window's global
    and category sorted set, up to 10 per delta) on the same Valkey and the same rankings that the
    library's board was copied from. In-process and single-threaded, like the library's loop; the
    stream is parsed before the clock starts, as it is there. The stream is replayed from the
    start if it runs out before ``seconds``; every batch has its own id, so none is skipped as
    already applied.
    """
    from collections import defaultdict

    from django.utils import timezone

    from leaderboard.keys import GLOBAL
    from leaderboard.store import deltas_apply
    from leaderboard.windows import epoch, hour_floor, window_mask

    with stream.open() as handle:
        events = [(int(m), float(d)) for m, d in (line.split() for line in handle if line.strip())]
    # The benchmark's events all happen now: their bucket is the current hour, in every window.
    hour = hour_floor(timezone.now())
    hour_epoch, mask = epoch(hour), window_mask(hour, hour)
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    run_id = uuid.uuid4().hex[:8]
    client = redis_client()
    applied = deltas_total = n = 0
    cpu_before = valkey_cpu_s(client)
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        chunk = batches[n % len(batches)]
        scores: dict[int, float] = defaultdict(float)
        for vid, delta in chunk:
            scores[vid] += delta
        deltas = [[vid, hour_epoch, mask, score] for vid, score in scores.items() if score != 0]
        # The global scope only: a category scope's call is the same work on another slot.
        deltas_apply(batch_id=f"bench-stage-{run_id}-{n}", deltas={GLOBAL: deltas})
        applied += len(chunk)
        deltas_total += len(deltas)
        n += 1
    elapsed = time.perf_counter() - started
    cpu = valkey_cpu_s(client) - cpu_before
    return {"events_applied": applied, "batches": n, "deltas": deltas_total, "seconds": elapsed,
            "events_per_s": applied / elapsed if elapsed > 0 else 0.0,
            "valkey_cpu_s_per_1k": 1000 * cpu / applied if applied else None}  # fmt: skip


# --- the machine -------------------------------------------------------------------------------


def machine_info(client: Any) -> dict[str, Any]:
    from django.db import connection

    cpu = platform.processor()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        pg = cur.fetchone()[0]
    server = client.info("server")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu or "unknown",
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": pg,
        "valkey": server.get("valkey_version") or server.get("redis_version"),
        "commit": commit,
        "load_tool": "wrk" if wrk_available() else "python keep-alive load generator (wrk not installable)",
    }


# --- reporting -----------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def headline(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, measured, target, verdict) rows."""
    rows: list[tuple[str, str, str, str]] = []
    ing = res.get("ingest", {}).get("median")
    if ing:
        rows.append(("Ingest, end to end (events/s)", _fmt(ing["end_to_end_per_s"]), "≥ 10,000",
                     _check(ing["end_to_end_per_s"] >= TARGETS["ingest"])))  # fmt: skip
    fr = res.get("freshness", {}).get("median")
    if fr:
        rows.append((f"Freshness p99 at {_fmt(fr['background_per_s'])} events/s (ms)", _fmt(fr["p99_ms"]),
                     "≤ 1,000 at 1,000 ev/s", _check(fr["p99_ms"] <= TARGETS["fresh_p99_ms"])))  # fmt: skip
    rd = res.get("reads", {}).get("median", {}).get("top20")
    if rd:
        ok = rd["paced_p99_ms"] <= TARGETS["top20_p99_ms"] and rd["paced_rps"] >= TARGETS["top20_rate"] * 0.95
        rows.append((f"Top-20 p99 at {_fmt(rd['paced_rps'])} req/s (ms)", _fmt(rd["paced_p99_ms"], 1),
                     "≤ 20 at ≥ 500 req/s", _check(ok)))  # fmt: skip
    rx = res.get("reindex", {}).get("median")
    if rx:
        videos = res["dataset"]["videos"]
        rows.append((f"Reindex {_fmt(videos)} videos (s)", _fmt(rx["wall_s"], 1), "≤ 60 for 1,000,000",
                     _check(rx["wall_s"] <= TARGETS["reindex_s"]) if videos >= 1_000_000 else "n/a (smaller set)"))  # fmt: skip
    cmp_ = res.get("compare", {})
    if "naive_top20_x" in cmp_:
        rows.append(("Top-20 vs naive Postgres (\u00d7 faster)", _fmt(cmp_["naive_top20_x"], 0), "≥ 30\u00d7",
                     _check(cmp_["naive_top20_x"] >= TARGETS["naive_top20_x"])))  # fmt: skip
    if "lib_update_x" in cmp_:
        # Two rows, said apart: end to end (HTTP, Kafka, Postgres, Redis) is not the stage the library
        # measures; the Redis stage is (the same events onto the same Valkey, in-process).
        rows.append(("Update rate vs leaderboard library, end to end (\u00d7)", _fmt(cmp_["lib_update_x"], 2),
                     "≥ 3\u00d7", _check(cmp_["lib_update_x"] >= TARGETS["lib_update_x"])))  # fmt: skip
    if "stage_update_x" in cmp_:
        rows.append(("Update rate vs leaderboard library, Redis stage (\u00d7)", _fmt(cmp_["stage_update_x"], 2),
                     "≥ 3\u00d7", _check(cmp_["stage_update_x"] >= TARGETS["lib_update_x"])))  # fmt: skip
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _runs(values: Sequence[Any], digits: int = 0) -> str:
    return ", ".join(_fmt(v, digits) for v in values)


def render_section(res: dict[str, Any]) -> str:
    prof = res["profile"]
    m = res["machine"]
    ds = res["dataset"]
    runs = prof["runs"]
    out: list[str] = []
    out.append(f"Run {res['finished']} ({res['duration_s'] / 60:.1f} min), commit `{m['commit']}`, "
               f"command `{res['command']}`.")  # fmt: skip
    if prof["name"] == "quick":
        out.append(f"Quick mode: {_fmt(ds['videos'])} videos, each figure the median of {runs} runs (the full "
                   "benchmark uses 3), shorter load phases; reindex and read figures are for the smaller set.")  # fmt: skip
    else:
        out.append(f"Each figure is the median of {runs} runs; the individual runs are listed beside it.")
    out.append("")
    out.append(f"**Machine**: {m['cpu']}, {m['cores']} cores ({m['physical_cores']} physical), "
               f"{m['memory_gib']} GiB memory; {m['os']}; Python {m['python']}, PostgreSQL {m['postgres']}, "
               f"Valkey {m['valkey']}, Tansu (Kafka API). Servers, web, bridge, worker and load generator all share "
               f"the {m['cores']} cores. HTTP load: {m['load_tool']}.")  # fmt: skip
    lay = res["layout"]
    out.append(f"**Processes**: gunicorn {lay['web']}; `kafka_bridge --batch-size 500 --max-wait-ms 50` \u00d71; "
               f"celery worker {lay['worker']}; {lay['clients']} load-generating client processes.")  # fmt: skip
    out.append(f"**Data**: {_fmt(ds['videos'])} videos, {_fmt(ds['users'])} users, {_fmt(ds['events'])} seeded "
               f"events over 7 days (Zipf {ds['zipf']}), {_fmt(ds['counter_rows'])} hourly counter rows; ranked "
               f"videos: {_fmt(ds['ranked_all'])} all-time, {_fmt(ds['ranked_day'])} in the day window.")  # fmt: skip
    out.append("")
    out += _table(("Target", "Measured", "Goal", "Verdict"), headline(res))
    out.append("")

    ing = res.get("ingest")
    if ing:
        med = ing["median"]
        r = ing["runs"]
        out.append("#### Ingest (HTTP POST, batches of 500 → sorted sets)")
        out.append("")
        out += _table(("Figure", "Median", "Runs"), [
            ("End to end (events/s)", _fmt(med["end_to_end_per_s"]), _runs([x["end_to_end_per_s"] for x in r])),
            ("Accepted by the API (events/s)", _fmt(med["accepted_per_s"]), _runs([x["accepted_per_s"] for x in r])),
            ("Events per run", _fmt(med["events"]), _runs([x["events"] for x in r])),
            ("Drain after the last POST (s)", _fmt(med["drain_seconds"], 1), _runs([x["drain_seconds"] for x in r], 1)),
            ("POST p50 / p99 (ms)", f"{_fmt(med['post_p50_ms'])} / {_fmt(med['post_p99_ms'])}",
             _runs([x["post_p99_ms"] for x in r])),
            ("Errors", _fmt(med["errors"]), _runs([x["errors"] for x in r])),
        ])  # fmt: skip
        out.append("")
        out.append("CPU per component (median over runs; % of one core over the run's wall time):")
        out.append("")
        names = [n for n in med["cpu_s_per_1k"] if n != "other processes"]
        rows: list[tuple[str, ...]] = [
            (n, _fmt(med["cpu_s_per_1k"][n], 3), _fmt(med["cpu_core_pct"][n])) for n in names
        ]
        rows.append(("**total, benchmark**", _fmt(sum(med["cpu_s_per_1k"][n] for n in names), 3),
                     _fmt(med["cpu_total_pct"])))  # fmt: skip
        if "other processes" in med["cpu_s_per_1k"]:
            rows.append(("other processes on the machine", _fmt(med["cpu_s_per_1k"]["other processes"], 3),
                         _fmt(med["cpu_core_pct"]["other processes"])))  # fmt: skip
        out += _table(("Component", "CPU-s per 1k events", "% of a core"), rows)
        out.append("")
    fr = res.get("freshness")
    if fr:
        med, r = fr["median"], fr["runs"]
        out.append("#### Freshness (POST accepted → score changed in `GET /rankings/videos/<id>/`)")
        out.append("")
        out += _table(("Figure", "Median", "Runs"), [
            ("Background load (events/s)", _fmt(med["background_per_s"]), _runs([x["background_per_s"] for x in r])),
            ("Probes", _fmt(med["probes"]), _runs([x["probes"] for x in r])),
            ("p50 (ms)", _fmt(med["p50_ms"]), _runs([x["p50_ms"] for x in r])),
            ("p99 (ms)", _fmt(med["p99_ms"]), _runs([x["p99_ms"] for x in r])),
            ("Never seen within 10 s", _fmt(med["lost"]), _runs([x["lost"] for x in r])),
        ])  # fmt: skip
        out.append("")
    rd = res.get("reads")
    if rd:
        out.append("#### Reads (gunicorn, wrk)")
        out.append("")
        rows = []
        for name, label in (("top20", "`/rankings/?window=day&limit=20`"), ("video", "`/rankings/videos/<id>/`")):
            med, r = rd["median"][name], [x[name] for x in rd["runs"]]
            rows.append(
                (
                    label,
                    "closed loop, " + _fmt(med["max_connections"]) + " conns",
                    _fmt(med["max_rps"]),
                    _fmt(med["max_p50_ms"], 1),
                    _fmt(med["max_p99_ms"], 1),
                    _runs([x["max_rps"] for x in r]),
                )
            )
            rows.append((label, "paced, 32 conns", _fmt(med["paced_rps"]), _fmt(med["paced_p50_ms"], 1),
                         _fmt(med["paced_p99_ms"], 1), _runs([x["paced_p99_ms"] for x in r], 1)))  # fmt: skip
        out += _table(("Endpoint", "Load", "req/s", "p50 ms", "p99 ms", "Runs (req/s or p99)"), rows)
        out.append("")
    rx = res.get("reindex")
    if rx:
        med, r = rx["median"], rx["runs"]
        out.append("#### Rebuild (`manage.py reindex`)")
        out.append("")
        out += _table(("Figure", "Median", "Runs"), [
            ("Command wall time (s)", _fmt(med["wall_s"], 1), _runs([x["wall_s"] for x in r], 1)),
            ("Rebuild as reported (s)", _fmt(med["rebuild_s"], 1), _runs([x["rebuild_s"] for x in r], 1)),
            ("Valkey memory per ranked video (bytes)", _fmt(rx["memory"]["bytes_per_ranked_video"]),
             f"{_fmt(rx['memory']['memory_bytes'] / 2**20, 0)} MiB for {_fmt(rx['memory']['ranked_all'])} ranked"),
        ])  # fmt: skip
        out.append("")
    cmp_ = res.get("compare")
    if cmp_:
        out.append("#### Side by side, same data and servers")
        out.append("")
        ours = cmp_["ours"]
        rows = [
            ("Ingest, end to end (events/s)", _fmt(ours["ingest_per_s"]), _fmt(cmp_.get("naive", {}).get("inserts_per_s")),
             _fmt(cmp_.get("naive_ingest_x"), 1), _fmt(cmp_.get("lib", {}).get("updates_per_s")),
             _fmt(cmp_.get("lib_update_x"), 2)),
            ("Redis update stage, in-process (events/s)", _fmt(cmp_.get("stage", {}).get("events_per_s")), "\u2013",
             "\u2013", _fmt(cmp_.get("lib", {}).get("updates_per_s")), _fmt(cmp_.get("stage_update_x"), 2)),
            ("Valkey CPU-s per 1k events, update stage", _fmt(cmp_.get("stage", {}).get("valkey_cpu_s_per_1k"), 3),
             "\u2013", "\u2013", _fmt(cmp_.get("lib", {}).get("valkey_cpu_s_per_1k"), 3), "\u2013"),
            ("Top-20 p50 (ms)", _fmt(ours["top20_p50_ms"], 2), _fmt(cmp_.get("naive", {}).get("top20_p50_ms"), 1),
             _fmt(cmp_.get("naive_top20_x"), 0), _fmt(cmp_.get("lib", {}).get("top20_p50_ms"), 2),
             _fmt(cmp_.get("lib_top20_x"), 2)),
            ("Single-video rank p50 (ms)", _fmt(ours["rank_p50_ms"], 2), _fmt(cmp_.get("naive", {}).get("rank_p50_ms"), 1),
             _fmt(cmp_.get("naive_rank_x"), 0), _fmt(cmp_.get("lib", {}).get("rank_p50_ms"), 2),
             _fmt(cmp_.get("lib_rank_x"), 2)),
        ]  # fmt: skip
        out += _table(("Figure", "Ours", "Naive Postgres", "Ours \u00d7", "leaderboard 3.7.3", "Ours \u00d7"), rows)
        out.append("")
        out.append(f"Naive table: {_fmt(cmp_.get('naive_rows'))} rows (one per counted event), loaded in "
                   f"{_fmt(cmp_.get('naive_load_s'), 0)} s. Library board: {_fmt(cmp_.get('lib_members'))} members "
                   "copied from our day ranking. Ours: end-to-end ingest above; reads are the selectors "
                   "(`ranking_top` with metadata, `ranking_standings`: 10 ranks) called in-process, like the "
                   "naive SQL and the library calls; over HTTP add the read figures above.")  # fmt: skip
        out.append("")
        if cmp_.get("stage"):
            st = cmp_["stage"]
            out.append("Update rates, which is which: the **Ingest** row is our whole path (HTTP, Kafka, Postgres "
                       "counters and dedupe, then Redis) against the library's in-process per-event `change_score_for` "
                       "on one sorted set. The **Redis update stage** row is like for like: the same event stream, "
                       f"in-process and single-threaded, summed per batch of {BATCH} events into (video, hour) deltas "
                       "with window masks as the worker does and applied with `deltas_apply` (one `APPLY` Lua call "
                       "per batch, up to 10 sorted sets per delta: 5 windows, global and category) on the same Valkey "
                       f"and rankings; median of {_runs([r['events_per_s'] for r in cmp_.get('stage_runs', [])])} "
                       f"events/s, {_fmt(st.get('deltas'))} deltas for {_fmt(st.get('events_applied'))} events per "
                       "run. Valkey CPU for the library includes its board copy (first run) and its reads.")  # fmt: skip
            out.append("")
    out.append(f"<!-- bench-data {json.dumps(res, separators=(',', ':'), default=str)} -->")
    return "\n".join(out)


DOC_TEMPLATE = """# Benchmarks

`make bench` (1,000,000 videos) and `make bench-quick` (100,000 videos, under
3 minutes) run `scripts/bench.py`, which rewrites the two result sections
below and `docs/benchmarks.png`; everything else on this page is written by hand.

## Results: full run

<!-- bench:full:start -->
(not run yet)
<!-- bench:full:end -->

## Results: quick run

<!-- bench:quick:start -->
(not run yet)
<!-- bench:quick:end -->
"""


def doc_update(res: dict[str, Any], path: Path = DOC) -> None:
    text = path.read_text() if path.exists() else DOC_TEMPLATE
    mode = res["profile"]["name"]
    start, end = f"<!-- bench:{mode}:start -->", f"<!-- bench:{mode}:end -->"
    if start not in text or end not in text:
        text = text.rstrip() + f"\n\n## Results: {mode} run\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{start}\n{render_section(res)}\n{end}{tail}")


def doc_results(path: Path = DOC) -> dict[str, dict[str, Any]]:
    """The results embedded in the page, by mode, so the plot can show both runs."""
    found: dict[str, dict[str, Any]] = {}
    if path.exists():
        for match in re.finditer(r"<!-- bench-data (\{.*?\}) -->", path.read_text()):
            with suppress(ValueError):
                data = json.loads(match.group(1))
                found[data["profile"]["name"]] = data
    return found


def plot(results: dict[str, dict[str, Any]], path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in ("full", "quick") if m in results]
    colors = {"full": "#1f77b4", "quick": "#9ecae1"}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    fig.suptitle("Realtime Video Ranking benchmark (2 cores shared by servers, app and load; medians of runs)")

    def bars(ax: Any, labels: list[str], getter: Callable[[dict[str, Any]], list[float | None]], title: str,
             ylabel: str, target: float | None = None, log: bool = False, target_label: str = "target") -> None:  # fmt: skip
        width = 0.8 / max(len(modes), 1)
        for i, mode in enumerate(modes):
            values = [v if v is not None and v == v else 0.0 for v in getter(results[mode])]
            xs = [x + i * width for x in range(len(labels))]
            drawn = ax.bar(xs, values, width=width, label=f"{mode} ({results[mode]['dataset']['videos']:,} videos)",
                           color=colors[mode])  # fmt: skip
            ax.bar_label(drawn, labels=[f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in values], fontsize=7)
        ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(labels))], labels, fontsize=8)
        if target is not None:
            ax.axhline(target, color="#d62728", linestyle="--", linewidth=1, label=target_label)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.legend(fontsize=7)

    def get(res: dict[str, Any], *keys: str) -> Any:
        cur: Any = res
        for k in keys:
            if not isinstance(cur, dict) or k not in cur:
                return None
            cur = cur[k]
        return cur

    bars(axes[0][0], ["end to end", "accepted by API"],
         lambda r: [get(r, "ingest", "median", "end_to_end_per_s"), get(r, "ingest", "median", "accepted_per_s")],
         "Ingest (events/s)", "events/s", TARGETS["ingest"], target_label="target ≥ 10,000")  # fmt: skip
    bars(axes[0][1], ["p50", "p99"],
         lambda r: [get(r, "freshness", "median", "p50_ms"), get(r, "freshness", "median", "p99_ms")],
         "Freshness at 1,000 events/s (ms)", "ms", TARGETS["fresh_p99_ms"], target_label="p99 target ≤ 1,000")  # fmt: skip
    bars(axes[0][2], ["top-20 p50", "top-20 p99", "video p50", "video p99"],
         lambda r: [get(r, "reads", "median", "top20", "paced_p50_ms"), get(r, "reads", "median", "top20", "paced_p99_ms"),
                    get(r, "reads", "median", "video", "paced_p50_ms"), get(r, "reads", "median", "video", "paced_p99_ms")],
         "Read latency, paced at ~500 req/s (ms)", "ms", TARGETS["top20_p99_ms"], target_label="top-20 p99 ≤ 20")  # fmt: skip
    bars(axes[1][0], ["top-20", "video"],
         lambda r: [get(r, "reads", "median", "top20", "max_rps"), get(r, "reads", "median", "video", "max_rps")],
         "Read throughput, closed loop (req/s)", "req/s", TARGETS["top20_rate"], target_label="500 req/s")  # fmt: skip
    bars(axes[1][1], ["reindex (s)"], lambda r: [get(r, "reindex", "median", "wall_s")],
         "Rebuild time (s)", "s", TARGETS["reindex_s"], target_label="≤ 60 s for 1M videos")  # fmt: skip
    bars(axes[1][2], ["ingest\nvs naive", "top-20\nvs naive", "rank\nvs naive", "updates\nvs lib\n(e2e)",
                      "updates\nvs lib\n(Redis)", "top-20\nvs lib", "rank\nvs lib"],
         lambda r: [get(r, "compare", k) for k in ("naive_ingest_x", "naive_top20_x", "naive_rank_x", "lib_update_x",
                                                     "stage_update_x", "lib_top20_x", "lib_rank_x")],
         "Ours ÷ alternative (\u00d7 better, log)", "\u00d7", 1.0, log=True, target_label="parity")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(res: dict[str, Any]) -> None:
    rows = headline(res)
    width = max((len(r[0]) for r in rows), default=10)
    print()
    print(f"{'Target':<{width}}  {'Measured':>12}  {'Goal':<22}  Verdict")
    for metric, value, goal, verdict in rows:
        print(f"{metric:<{width}}  {value:>12}  {goal:<22}  {verdict.replace('*', '')}")
    print()


# --- the whole run -----------------------------------------------------------------------------


@dataclass
class Bench:
    profile: Profile
    env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    port: int = 0
    api_key: str = ""
    stack: Any = None
    results: dict[str, Any] = field(default_factory=dict)

    def child_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def manage(self, *args: str, quiet: bool = False) -> str:
        proc = subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if quiet else None)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {proc.stdout[-1000:]}")
        return proc.stdout

    def start_services(self) -> dict[str, int]:
        logs = BENCH_DIR / "logs"
        self.port = _free_port()
        web = Service("web", [str(BIN / "gunicorn"), "ranking_site.wsgi:application", "-b", f"127.0.0.1:{self.port}",
                              "-w", str(WEB_WORKERS), "-k", "gthread", "--threads", str(WEB_THREADS),
                              "--backlog", "2048", "--keep-alive", "30"], self.env, logs)  # fmt: skip
        bridge = Service("bridge", [str(BIN / "python"), "manage.py", "kafka_bridge", "--batch-size", "500",
                                    "--max-wait-ms", "50", "--lag-every-s", "5"], self.env, logs)  # fmt: skip
        worker = Service("worker", [str(BIN / "celery"), "-A", "ranking_site", "worker", "--pool", CELERY_POOL,
                                    "--concurrency", str(CELERY_CONCURRENCY), "-l", "info", "--without-gossip",
                                    "--without-mingle", "-n", "bench@%h"], self.env, logs)  # fmt: skip
        self.services += [web, bridge, worker]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"gunicorn did not answer; see {web.log_path}")
        worker.wait_for_log(r"ready", 60)
        bridge.wait_for_log(r"assigned partitions", 60)
        return {"web": web.pid, "bridge": bridge.pid, "worker": worker.pid}

    def stop_services(self) -> None:
        for service in reversed(self.services):
            with suppress(Exception):
                service.stop()
        self.services.clear()

    def run(self) -> dict[str, Any]:
        prof = self.profile
        started = time.monotonic()
        stages = ["tools", "servers", "seed", "reindex", "services", "ingest", "freshness", "reads", "naive",
                  "leaderboard", "report"]  # fmt: skip

        def stage(name: str, note: str = "") -> None:
            say(f"\n==> [{stages.index(name) + 1}/{len(stages)}] {name} {note}".rstrip())

        stage("tools", "(wrk from Debian)")
        subprocess.run(["bash", str(ROOT / "scripts" / "install_bench_tools.sh")], check=False)
        if not wrk_available():
            say("  wrk unavailable: reads use the Python keep-alive load generator instead")

        stage("servers", "(PostgreSQL, Valkey, Tansu from wheels)")
        self.stack = _devstack().Stack(BENCH_DIR)
        base = self.stack.up()
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ, **base,
            "DATABASE_URL": database_recreate(base["DATABASE_URL"], BENCH_DB),
            "DJANGO_SETTINGS_MODULE": "ranking_site.settings.base",
            "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "THROTTLE_INGEST_PER_KEY": "10000000/min", "THROTTLE_INGEST_PER_IP": "10000000/min",
            "KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": f"{topic}-group",
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        os.environ.update(self.env)
        import django

        django.setup()
        from core.kafka import topic_ensure
        from leaderboard import keys as rk

        client = redis_client()
        valkey_wait_loaded(client)
        client.flushall()
        self.manage("migrate", "-v0")
        topic_ensure()
        self.results["machine"] = machine_info(client)

        stage("seed", f"({prof.videos:,} videos, {prof.events:,} events over 7 days)")
        seed_out = self.manage("seed", "--videos", str(prof.videos), "--users", str(prof.users), "--events",
                               str(prof.events), "--days", "7", "--via", "db", "--seed", "1", "--zipf", str(prof.zipf))  # fmt: skip
        say("  " + seed_out.strip().replace("\n", "\n  "))
        match = re.search(r"([0-9]+) counter rows", seed_out)
        self.results["dataset"] = {"videos": prof.videos, "users": prof.users, "events": prof.events,
                                   "zipf": prof.zipf, "counter_rows": int(match.group(1)) if match else None}  # fmt: skip

        stage("reindex", f"(\u00d7{prof.runs}; memory measured from an empty Valkey)")
        reindex = [reindex_run(env=self.env, client=client, fresh=(i == 0)) for i in range(prof.runs)]
        self.results["reindex"] = {"runs": reindex, "median": median_of(reindex), "memory": reindex[0]}
        say(f"  reindex: {_runs([r['wall_s'] for r in reindex], 1)} s; "
            f"{reindex[0]['bytes_per_ranked_video']:.0f} bytes per ranked video")  # fmt: skip
        self.results["dataset"]["ranked_all"] = reindex[-1]["ranked_all"]
        self.results["dataset"]["ranked_day"] = reindex[-1]["ranked_day"]

        stage("services", "(gunicorn, kafka_bridge, celery worker)")
        self.api_key = self.manage("create_api_key", "bench", "--quiet").strip().splitlines()[-1]
        pids = self.start_services()
        cpu_pids = {**pids, **server_pids(self.stack)}
        self.results["layout"] = {
            "web": f"{WEB_WORKERS} workers \u00d7 {WEB_THREADS} threads (gthread)",
            "worker": f"--pool {CELERY_POOL} --concurrency {CELERY_CONCURRENCY}",
            "clients": INGEST_CLIENTS,
        }
        probe_ids = random.Random(2).sample(Traffic.load(zipf=prof.zipf).video_ids, 200)
        traffic = Traffic.load(zipf=prof.zipf, exclude=set(probe_ids))
        # Warm-up: connections, caches and the consumer group settle before anything is measured.
        ingest_run(port=self.port, api_key=self.api_key, traffic=traffic, clients=INGEST_CLIENTS, seconds=2.0,
                   cpu_pids=cpu_pids)  # fmt: skip

        stage(
            "ingest",
            f"({INGEST_CLIENTS} clients \u00d7 batches of {BATCH}, {prof.ingest_s:.0f} s per run, \u00d7{prof.runs})",
        )
        ingest = []
        for i in range(prof.runs):
            r = ingest_run(port=self.port, api_key=self.api_key, traffic=traffic, clients=INGEST_CLIENTS,
                           seconds=prof.ingest_s, cpu_pids=cpu_pids)  # fmt: skip
            say(f"  run {i + 1}: {r['end_to_end_per_s']:,.0f} events/s end to end, {r['accepted_per_s']:,.0f} "
                f"accepted/s, drain {r['drain_seconds']:.1f}s, errors {r['errors']}")  # fmt: skip
            ingest.append(r)
        self.results["ingest"] = {"runs": ingest, "median": median_of(ingest)}

        stage("freshness", f"(1,000 events/s background, {prof.fresh_s:.0f} s per run, \u00d7{prof.runs})")
        fresh = []
        for i in range(prof.runs):
            r = freshness_run(port=self.port, api_key=self.api_key, traffic=traffic, probe_ids=probe_ids,
                              seconds=prof.fresh_s)  # fmt: skip
            say(f"  run {i + 1}: p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms over {r['probes']} probes")
            fresh.append(r)
        self.results["freshness"] = {"runs": fresh, "median": median_of(fresh)}

        stage(
            "reads",
            f"({self.results['machine']['load_tool'].split(' ')[0]}, {prof.read_s:.0f} s per load, \u00d7{prof.runs})",
        )
        ranked = [rk.video_id_of(m) for m in client.zrandmember(rk.ranking_key("day"), 5000) or []]
        top_paths = ["/api/v1/rankings/?window=day&limit=20"]
        video_paths = [f"/api/v1/rankings/videos/{vid}/" for vid in ranked]
        # Warm-up, as for ingest: until now no worker has served a read, and the first seconds of
        # reads (each worker's first requests on these views) had tails of 50-400 ms that the
        # steady state does not have. Not measured.
        for paths in (top_paths, video_paths):
            http_load(port=self.port, paths=paths, connections=32, seconds=READ_WARMUP_S)
        reads = []
        for i in range(prof.runs):
            r = {"top20": reads_run(port=self.port, paths=top_paths, seconds=prof.read_s),
                 "video": reads_run(port=self.port, paths=video_paths, seconds=prof.read_s)}  # fmt: skip
            say(f"  run {i + 1}: top-20 {r['top20']['max_rps']:,.0f} req/s max, p99 {r['top20']['paced_p99_ms']:.1f} ms "
                f"at {r['top20']['paced_rps']:,.0f} req/s; video {r['video']['max_rps']:,.0f} req/s max, "
                f"p99 {r['video']['paced_p99_ms']:.1f} ms at {r['video']['paced_rps']:,.0f} req/s")  # fmt: skip
            reads.append(r)
        self.results["reads"] = {"runs": reads, "median": median_of(reads)}
        ours_reads = median_of([in_process_reads(video_ids=ranked, samples=prof.reads_in_process)
                                for _ in range(prof.runs)])  # fmt: skip
        self.stop_services()  # the comparisons run alone on the machine, as ours did

        stage("naive", "(a row per event, GROUP BY at read time)")
        compare: dict[str, Any] = {"ours": {"ingest_per_s": self.results["ingest"]["median"]["end_to_end_per_s"],
                                            **ours_reads}}  # fmt: skip
        load = naive_load()
        say(f"  loaded {load['rows']:,} rows in {load['load_s']:.0f}s")
        naive_runs = []
        for i in range(prof.runs):
            r = {**naive_ingest_run(traffic=traffic, seconds=prof.naive_ingest_s),
                 **naive_reads_run(video_ids=ranked, samples=prof.naive_samples)}  # fmt: skip
            say(f"  run {i + 1}: {r['inserts_per_s']:,.0f} inserts/s, top-20 {r['top20_p50_ms']:,.0f} ms, "
                f"rank {r['rank_p50_ms']:,.0f} ms")  # fmt: skip
            naive_runs.append(r)
        naive = median_of(naive_runs)
        compare.update(naive=naive, naive_rows=load["rows"], naive_load_s=load["load_s"])
        compare["naive_ingest_x"] = compare["ours"]["ingest_per_s"] / naive["inserts_per_s"]
        compare["naive_top20_x"] = naive["top20_p50_ms"] / compare["ours"]["top20_p50_ms"]
        compare["naive_rank_x"] = naive["rank_p50_ms"] / compare["ours"]["rank_p50_ms"]

        stage("leaderboard", "(leaderboard==3.7.3 in its own virtualenv, one change_score_for per event)")
        python = leaderboard_venv()
        if python is not None:
            stream = BENCH_DIR / "leaderboard-stream.txt"
            leaderboard_stream(traffic, stream, int(prof.lib_s * 20_000))
            lib_runs = []
            for i in range(prof.runs):
                cpu_before = valkey_cpu_s(client)
                r = leaderboard_run(python=python, port=int(base["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]),
                                    stream=stream, seconds=prof.lib_s, skip=0, fill=(i == 0),
                                    reads=prof.reads_in_process)  # fmt: skip
                # Includes the copy (first run) and the reads: an upper bound for the updates alone.
                r["valkey_cpu_s_per_1k"] = 1000 * (valkey_cpu_s(client) - cpu_before) / max(r["events_applied"], 1)
                say(f"  run {i + 1}: {r['updates_per_s']:,.0f} updates/s, top-20 {r['top20_p50_ms']:.2f} ms, "
                    f"rank {r['rank_p50_ms']:.2f} ms ({r['members']:,} members)")  # fmt: skip
                lib_runs.append(r)
            lib = median_of(lib_runs)
            compare.update(lib=lib, lib_members=lib_runs[0].get("members_copied", lib["members"]))
            compare["lib_update_x"] = compare["ours"]["ingest_per_s"] / lib["updates_per_s"]
            compare["lib_top20_x"] = lib["top20_p50_ms"] / compare["ours"]["top20_p50_ms"]
            compare["lib_rank_x"] = lib["rank_p50_ms"] / compare["ours"]["rank_p50_ms"]
            # Like for like: our Redis update stage alone, on the same stream, Valkey and rankings.
            stage_runs = []
            for i in range(prof.runs):
                r = redis_stage_run(stream=stream, seconds=prof.lib_s)
                say(f"  run {i + 1}: our Redis stage {r['events_per_s']:,.0f} events/s "
                    f"({r['batches']:,} batches of {BATCH}, {r['deltas']:,} deltas)")  # fmt: skip
                stage_runs.append(r)
            compare["stage"] = median_of(stage_runs)
            compare["stage_runs"] = stage_runs
            compare["stage_update_x"] = compare["stage"]["events_per_s"] / lib["updates_per_s"]
            redis_client().from_url(base["REDIS_URL"].rsplit("/", 1)[0] + f"/{LEADERBOARD_DB}").flushdb()
        self.results["compare"] = compare

        stage("report")
        self.results["profile"] = {"name": prof.name, "runs": prof.runs}
        self.results["duration_s"] = time.monotonic() - started
        self.results["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.results["command"] = "make bench-quick" if prof.name == "quick" else "make bench"
        return self.results

    def close(self) -> None:
        self.stop_services()
        if self.stack is not None:
            say("stopping the bench servers")
            self.stack.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 videos, 2 runs, shorter loads (< 3 minutes)")
    parser.add_argument("--no-doc", action="store_true", help="print the table only; leave docs/ alone")
    args = parser.parse_args(argv)
    bench = Bench(profile=QUICK if args.quick else FULL)
    try:
        results = bench.run()
    finally:
        bench.close()
    print_table(results)
    if not args.no_doc:
        doc_update(results)
        plot(doc_results())
        say(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
