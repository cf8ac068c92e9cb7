"""Stage 1, ingest: events/s from the first POST to the last event applied to the sorted sets,
and the CPU each component spent on them."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

from tqdm import tqdm

from .config import BATCH
from .servers import machine_cpu_seconds, tree_cpu_seconds, valkey_commands, valkey_commands_per_event
from .traffic import Traffic, bodies_prepare, clients_join, post_clients
from .util import percentile, timed_bar


def db_now() -> datetime:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT statement_timestamp()")
        moment: datetime = cur.fetchone()[0]
        return moment


def counted_since(since: datetime, until: datetime | None = None) -> tuple[int, int]:
    """(events counted and applied to Redis, batches not yet applied) for batches received since;
    with ``until``, applied by then."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT COALESCE(SUM(counted) FILTER (WHERE applied_at <= COALESCE(%s, applied_at)), 0),
                   COUNT(*) FILTER (WHERE applied_at IS NULL)
            FROM scoring_batch WHERE source = 'kafka' AND received_at >= %s
            """,
            [until, since],
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
    valkey: Any, drain_timeout: float = 300.0, batch: int = BATCH,
) -> dict[str, Any]:  # fmt: skip
    """Events/s end to end: first POST to the last event applied to the sorted sets; CPU per
    component, and where Valkey's time went by command (``valkey`` is a client of the rankings' node).
    The clients' bodies are built first, outside the measured time and CPU."""
    prepared = bodies_prepare(traffic=traffic, clients=clients, seconds=seconds, batch=batch)
    since = db_now()
    commands_before = valkey_commands(valkey)
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in cpu_pids.items()}
    machine_before = machine_cpu_seconds()
    started = time.monotonic()
    procs, queue, _ = post_clients(
        port=port, api_key=api_key, traffic=traffic, clients=clients, seconds=seconds, batch=batch, prepared=prepared
    )
    with timed_bar(seconds, "posting"):
        result = clients_join(procs, queue)
    load_end = time.monotonic()
    machine_mid, db_mid = machine_cpu_seconds(), db_now()
    finished, counted = wait_applied(since, result.events, drain_timeout)
    machine_end = machine_cpu_seconds()
    cpu_after = {name: tree_cpu_seconds(pid) for name, pid in cpu_pids.items()}
    # The two phases of a run: while the clients post, the pipeline shares the cores with the API
    # and the load generator; after the last POST it drains the backlog alone.
    applied_posting, _ = counted_since(since, db_mid)
    posting, drain = load_end - started, finished - load_end  # drain > 0: db_now() ran inside it
    commands = valkey_commands_per_event(commands_before, valkey_commands(valkey), counted)
    wall = finished - started
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_pids}
    cpu["load generator"] = result.cpu_s
    # Whatever else ran on the machine meanwhile: the figures above are only as clean as this is small.
    cpu["other processes"] = max(machine_end - machine_before - sum(cpu.values()), 0.0)
    per_k = {name: 1000.0 * s / max(counted, 1) for name, s in cpu.items()}
    share = {name: 100.0 * s / wall for name, s in cpu.items()}
    return {
        "events": result.events,
        "counted": counted,
        "complete": counted >= result.events,
        "requests": result.requests,
        "errors": sum(result.errors.values()),
        "error_kinds": result.errors,
        "post_seconds": posting,
        "drain_seconds": drain,
        "wall_seconds": wall,
        "accepted_per_s": result.events / posting,
        "applied_posting_per_s": applied_posting / posting,
        "applied_draining_per_s": max(counted - applied_posting, 0) / drain,
        # Busy time of the whole machine in % of one core (200 = both cores), per phase.
        "machine_posting_pct": 100.0 * (machine_mid - machine_before) / posting,
        "machine_draining_pct": 100.0 * (machine_end - machine_mid) / drain,
        "end_to_end_per_s": counted / wall,
        "post_p50_ms": percentile(result.latencies, 50) * 1000,
        "post_p99_ms": percentile(result.latencies, 99) * 1000,
        "cpu_s_per_1k": per_k,
        # Every process of the benchmark (load generator included); not the rest of the machine.
        "cpu_s_per_1k_all": sum(v for k, v in per_k.items() if k != "other processes"),
        "cpu_core_pct": share,
        "cpu_total_pct": sum(v for k, v in share.items() if k != "other processes"),
        "valkey_commands": commands,
    }
