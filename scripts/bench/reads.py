"""Stage 3, reads: the top-20 page and a video's standing over HTTP, closed loop for the most
requests/s, then paced for the latency at a given rate."""

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

from httpclient import TRANSPORT_ERRORS, Client

from .config import BENCH_DIR, WEB_THREADS, WEB_WORKERS
from .util import percentile

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
        client = Client("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        i = offset
        while time.monotonic() < deadline:
            path = paths[i % len(paths)]
            i += 7
            started = time.perf_counter()
            try:
                if client.get(path).status != 200:
                    errors[0] += 1
            except TRANSPORT_ERRORS:
                errors[0] += 1
                continue
            mine.append(time.perf_counter() - started)
            if pause_s:
                time.sleep(pause_s)
        client.close()
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
