"""The benchmark's measurement code on a minuscule data set, against the test servers.

scripts/bench runs for minutes on a million videos; this proves in seconds
that each of its measurements (ingest through the real bridge and worker,
freshness, HTTP reads with the Python load generator, closed and open loop,
reindex and memory, the naive Postgres comparison, the in-process reads) and
its report still work.
wrk and the leaderboard library's virtualenv are left to the real benchmark.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
from django.db import connection

from core.redis import redis_client
from events.models import ApiKey
from scoring.rebuild import rankings_rebuild
from tests.processes import bridge, process_env, worker
from tests.scripts_loader import load_script

fold = load_script("bench.fold")
freshness = load_script("bench.freshness")
ingest = load_script("bench.ingest")
naive = load_script("bench.naive")
ours = load_script("bench.ours")
plot = load_script("bench.plot")
reads = load_script("bench.reads")
reindex = load_script("bench.reindex")
report = load_script("bench.report")
servers = load_script("bench.servers")
traffic = load_script("bench.traffic")
util = load_script("bench.util")


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_every_measurement_runs_on_a_tiny_data_set(
    make_video: Callable[..., Any], live_server: Any, tmp_path: Path, settings: Any, fresh_topic: str
) -> None:
    videos = [make_video(duration_seconds=60 + i) for i in range(12)]
    rankings_rebuild()
    client = redis_client()
    _, key = ApiKey.objects.create_key(name="bench-smoke")
    port = int(urlsplit(live_server.url).port or 80)

    # Rebuild first, while nothing else writes to Redis (it flushes the test database's keys).
    rebuild = reindex.reindex_run(env=process_env(), client=client, fresh=True)
    assert rebuild["wall_s"] > 0 and rebuild["memory_bytes"] >= 0

    probe_ids = [videos[0].id, videos[1].id]
    workload = traffic.Traffic.load(zipf=1.0, exclude=set(probe_ids))
    assert sorted(workload.video_ids) == sorted(v.id for v in videos[2:])
    body = traffic.events_body(workload, random.Random(1), 3, "u", 0)
    assert body.count(b'"video_id"') == 3

    group = f"bench-smoke-{uuid.uuid4().hex[:8]}"
    procs = {"bridge": bridge(tmp_path, group=group), "worker": worker(tmp_path)}
    try:
        cpu_pids = {name: proc.popen.pid for name, proc in procs.items()}
        ingested = ingest.ingest_run(
            port=port, api_key=key, traffic=workload, clients=1, seconds=1.0, cpu_pids=cpu_pids, batch=50,
            drain_timeout=60, valkey=client,
        )  # fmt: skip
        assert ingested["complete"], ingested
        assert ingested["events"] > 0 and ingested["errors"] == 0
        # The two phases add up to the run: what was applied while posting plus what the drain applied.
        phases = (ingested["applied_posting_per_s"] * ingested["post_seconds"]
                  + ingested["applied_draining_per_s"] * ingested["drain_seconds"])  # fmt: skip
        assert abs(phases - ingested["counted"]) < 1, ingested
        assert ingested["machine_posting_pct"] > 0 and ingested["machine_draining_pct"] >= 0, ingested
        assert set(ingested["cpu_s_per_1k"]) == {"bridge", "worker", "load generator", "other processes"}
        # The events reached the sorted sets through the apply script (EVALSHA): it is in Valkey's breakdown.
        commands = ingested["valkey_commands"]
        assert commands["evalsha"]["calls_per_event"] > 0, commands
        assert all(c["us_per_event"] > 0 for c in commands.values()) and len(commands) <= 6, commands

        fresh = freshness.freshness_run(
            port=port, api_key=key, traffic=workload, probe_ids=probe_ids, seconds=1.5, rate=200, batch=20
        )
        assert fresh["probes"] >= 1 and fresh["lost"] == 0, fresh
    finally:
        for proc in procs.values():
            proc.stop()

    paths = ["/api/v1/rankings/?window=day&limit=20", *(f"/api/v1/rankings/videos/{v.id}/" for v in videos[2:])]
    read = reads.py_http_run(port=port, paths=paths, connections=2, seconds=1.0)
    assert read["rps"] > 0 and read["errors"] == 0, read
    paced = reads.open_loop_run(port=port, paths=paths, connections=4, seconds=1.0, rate=40.0)
    assert paced["errors"] == 0 and paced["unsent"] == 0 and 30 < paced["rps"] < 50, paced
    in_process = ours.in_process_reads(video_ids=[v.id for v in videos[2:]], samples=5)
    assert in_process["top20_p50_ms"] > 0

    try:
        load = naive.naive_load()
        with connection.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(events), 0) FROM scoring_hourtotal")
            assert load["rows"] == cur.fetchone()[0] >= ingested["events"]  # one row per counted event
        baseline = {
            **naive.naive_ingest_run(traffic=workload, seconds=0.5, processes=1),
            **naive.naive_reads_run(video_ids=[v.id for v in videos[2:]], samples=2),
        }
        assert baseline["inserts_per_s"] > 0 and baseline["top20_p50_ms"] > 0
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM bench_naive_event")
            assert cur.fetchone()[0] == load["rows"]  # the timed inserts are taken out again
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_naive_event")

    # Last, as in the benchmark: the runs' minute rows folded into the hourly rows, every count kept.
    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(SUM(events), 0) FROM scoring_hourtotal")
        counted = cur.fetchone()[0]
        cur.execute("SELECT pg_backend_pid()")
        postmaster = psutil.Process(cur.fetchone()[0]).parent()
    assert postmaster is not None
    folded = fold.fold_measure(postgres_pid=postmaster.pid)
    assert folded["moved"] == folded["minute_rows"] > 0 and folded["events"] >= ingested["events"], folded
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM scoring_minutecounter")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT COALESCE(SUM(events), 0) FROM scoring_hourtotal")
        assert cur.fetchone()[0] == counted

    results = {
        "profile": {"name": "quick", "runs": 1},
        "machine": servers.machine_info(client),
        "dataset": {
            "videos": len(videos),
            "users": 0,
            "events": 0,
            "zipf": 1.0,
            "counter_rows": 0,
            "ranked_all": rebuild["ranked_all"],
            "ranked_day": rebuild["ranked_day"],
        },
        "layout": {"web": "live server", "worker": "threads", "clients": 1},
        "reindex": {"runs": [rebuild], "median": util.median_of([rebuild]), "memory": rebuild},
        "ingest": {"runs": [ingested], "median": util.median_of([ingested])},
        "freshness": {"runs": [fresh], "median": util.median_of([fresh])},
        "reads": {
            "runs": [{"top20": reads_row(read, paced), "video": reads_row(read, paced)}],
            "median": {"top20": reads_row(read, paced), "video": reads_row(read, paced)},
        },
        "compare": {
            "ours": {"ingest_per_s": ingested["end_to_end_per_s"], **in_process},
            "naive": baseline,
            "naive_rows": load["rows"],
            "naive_load_s": load["load_s"],
            "naive_ingest_x": 1.0,
            "naive_top20_x": 2.0,
            "naive_rank_x": 3.0,
        },
        "fold": folded,
        "duration_s": 1.0,
        "finished": "now",
        "command": "test",
    }
    doc, png = tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"
    report.doc_update(results, path=doc)
    text = doc.read_text()
    assert "Ingest, end to end" in text and "(not run yet)" in text  # the full section stays untouched
    # The goals of SPEC §12 that these stages measure, each a row with a verdict, and the CPU per component.
    for row in ("Ingest end to end", "CPU, all processes (CPU-s per 1,000 events)", "Ingest vs naive per-row",
                "Top-20 read vs naive query", "Video rank read vs naive query", "Freshness p99 at", "Top-20 p99 at"):  # fmt: skip
        assert f"| {row}" in text, row
    for row in ("| bridge |", "| worker |", "| load generator |", "| total, all processes of the benchmark |"):
        assert row in text, row
    assert "Where Valkey's time went" in text and "| EVALSHA |" in text
    assert "| Fold of the runs' minute rows, deferred" in text and "Deferred, in none of the rows above" in text
    plot.plot(report.doc_results(doc), path=png)
    assert png.stat().st_size > 10_000


def reads_row(closed: dict[str, Any], paced: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_rps": closed["rps"], "max_p50_ms": closed["p50_ms"], "max_p99_ms": closed["p99_ms"],
        "max_connections": closed["connections"], "paced_rps": paced["rps"], "paced_p50_ms": paced["p50_ms"],
        "paced_p99_ms": paced["p99_ms"], "paced_unsent": paced["unsent"], "errors": closed["errors"] + paced["errors"],
    }  # fmt: skip
