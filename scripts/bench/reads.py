"""Stage 3, reads: the top-20 page and a video's standing over HTTP, closed loop for the most
requests/s, then paced (open loop) for the latency at a given rate."""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import re
import shutil
import subprocess
import threading
import time
import uuid
from typing import Any

from httpclient import TRANSPORT_ERRORS, Client, Schedule

from .config import BENCH_DIR, READ_RATE, WEB_THREADS, WEB_WORKERS
from .util import percentile

WRK_SCRIPT = """
local paths = {%(paths)s}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
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


def wrk_run(*, port: int, paths: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """Closed loop: each connection sends its next request when the answer to the last is back."""
    script = BENCH_DIR / "wrk" / f"{uuid.uuid4().hex[:8]}.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    sample = [rng.choice(paths) for _ in range(min(5000, max(len(paths), 1)))]
    script.write_text(WRK_SCRIPT % {"paths": ",".join(json.dumps(p) for p in sample)})
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


def _py_http_worker(
    port: int, paths: list[str], threads: int, rate: float | None, start: float, end: float, out: Any
) -> None:
    """One process of the Python generator: ``threads`` keep-alive connections sharing one schedule."""
    schedule = Schedule(rate, start=start, end=end)
    latencies: list[float] = []
    errors = [0]
    last_done = [start]
    lock = threading.Lock()

    def loop(offset: int) -> None:
        client = Client("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        done = start
        i = offset
        while (slot := schedule.next()) is not None:
            path = paths[i % len(paths)]
            i += 7
            try:
                if client.get(path).status != 200:
                    errors[0] += 1
            except TRANSPORT_ERRORS:
                errors[0] += 1
                continue
            done = time.monotonic()
            mine.append(done - slot)
        client.close()
        with lock:
            latencies.extend(mine)
            last_done[0] = max(last_done[0], done)

    workers = [threading.Thread(target=loop, args=(n * 1009,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((latencies, errors[0], schedule.unsent, last_done[0]))


def _py_http_load(
    *, port: int, paths: list[str], connections: int, seconds: float, rate: float | None
) -> dict[str, Any]:
    """Keep-alive connections spread over two processes (one would be short of CPU on its own).

    With a ``rate`` the processes take turns on one schedule (process p sends requests
    p, p + 2, p + 4...), open loop; without, closed loop.
    """
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs_n = min(2, connections)
    # The first send time leaves the processes time to start: a schedule that began before
    # they could send would charge their start-up to the first requests' latency.
    start = time.monotonic() + 0.2
    end = start + seconds
    share = None if rate is None else rate / procs_n
    procs = []
    for n in range(procs_n):
        first = start if rate is None else start + n / rate
        args = (port, paths, max(1, connections // procs_n), share, first, end, queue)
        procs.append(ctx.Process(target=_py_http_worker, args=args))
    for p in procs:
        p.start()
    latencies: list[float] = []
    errors = unsent = 0
    last_done = start
    for _ in procs:
        lat, err, missed, done = queue.get(timeout=seconds + 60)
        latencies.extend(lat)
        errors += err
        unsent += missed
        last_done = max(last_done, done)
    for p in procs:
        p.join(10)
    return {
        "rps": len(latencies) / max(last_done - start, 1e-3),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
        "unsent": unsent,
        "connections": connections,
    }


def py_http_run(*, port: int, paths: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """Closed loop, the fallback when wrk cannot be installed."""
    return _py_http_load(port=port, paths=paths, connections=connections, seconds=seconds, rate=None)


def open_loop_run(*, port: int, paths: list[str], connections: int, seconds: float, rate: float) -> dict[str, Any]:
    """Paced at ``rate`` requests/s, open loop: each latency runs from the request's scheduled
    send time (scripts/httpclient.py says why). wrk cannot do this: its pacing waits per
    connection after each answer, so a stall delays the next sends instead of showing in them."""
    return _py_http_load(port=port, paths=paths, connections=connections, seconds=seconds, rate=rate)


def http_load(*, port: int, paths: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """Closed loop, with wrk when it is installed."""
    runner = wrk_run if wrk_available() else py_http_run
    return runner(port=port, paths=paths, connections=connections, seconds=seconds)


def valkey_snapshots(valkey: Any) -> int:
    """RDB snapshots Valkey has begun since it started (one in progress counts)."""
    info = valkey.info("persistence")
    return int(info.get("rdb_saves", 0)) + int(info.get("rdb_bgsave_in_progress", 0))


def reads_run(
    *, port: int, paths: list[str], seconds: float, valkey: Any, target_rate: float = READ_RATE
) -> dict[str, Any]:
    """Closed loop for the most requests/s, then paced at ``target_rate`` (open loop) for the latency there.

    ``paced_snapshots`` counts Valkey's RDB snapshots that ran during the paced load: forking and
    dumping a big data set takes seconds of a core, which shows in the tail on 2 shared cores.
    """
    closed = http_load(port=port, paths=paths, connections=2 * WEB_WORKERS * WEB_THREADS, seconds=seconds)
    snapshots = valkey_snapshots(valkey)
    # Connections enough that a few slow answers do not leave the schedule without a free one.
    paced = open_loop_run(port=port, paths=paths, connections=32, seconds=seconds, rate=target_rate)
    return {
        "paced_snapshots": valkey_snapshots(valkey) - snapshots,
        "max_rps": closed["rps"],
        "max_p50_ms": closed["p50_ms"],
        "max_p99_ms": closed["p99_ms"],
        "max_connections": closed["connections"],
        "paced_rps": paced["rps"],
        "paced_p50_ms": paced["p50_ms"],
        "paced_p99_ms": paced["p99_ms"],
        "paced_unsent": paced["unsent"],
        "errors": closed["errors"] + paced["errors"],
    }


def snapshot_note(run: dict[str, Any]) -> str:
    """What a paced run's line says when a Valkey snapshot overlapped it."""
    return " (a Valkey snapshot ran during it)" if run.get("paced_snapshots") else ""
