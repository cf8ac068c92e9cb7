"""The benchmark's measurement code on a minuscule data set, against the test servers.

scripts/bench.py runs for minutes on a million videos; this proves in seconds
that each of its measurements (ingest through the real bridge and worker,
freshness, HTTP reads with the Python load generator, reindex and memory, the
naive Postgres comparison, the in-process reads) and its report still work.
wrk and the leaderboard library's virtualenv are left to the real benchmark.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection

from core.redis import redis_client
from events.models import ApiKey
from scoring.rebuild import rankings_rebuild
from tests.processes import bridge, process_env, worker
from tests.scripts_loader import load_script

bench = load_script("bench")


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
    reindex = bench.reindex_run(env=process_env(), client=client, fresh=True)
    assert reindex["wall_s"] > 0 and reindex["memory_bytes"] >= 0

    probe_ids = [videos[0].id, videos[1].id]
    traffic = bench.Traffic.load(zipf=1.0, exclude=set(probe_ids))
    assert sorted(traffic.video_ids) == sorted(v.id for v in videos[2:])
    body = bench.events_body(traffic, bench.random.Random(1), 3, "u", 0)
    assert body.count(b'"video_id"') == 3

    group = f"bench-smoke-{uuid.uuid4().hex[:8]}"
    procs = {"bridge": bridge(tmp_path, group=group), "worker": worker(tmp_path)}
    try:
        cpu_pids = {name: proc.popen.pid for name, proc in procs.items()}
        ingest = bench.ingest_run(
            port=port, api_key=key, traffic=traffic, clients=1, seconds=1.0, cpu_pids=cpu_pids, batch=50,
            drain_timeout=60,
        )  # fmt: skip
        assert ingest["complete"], ingest
        assert ingest["events"] > 0 and ingest["errors"] == 0
        assert set(ingest["cpu_s_per_1k"]) == {"bridge", "worker", "load generator", "other processes"}

        fresh = bench.freshness_run(
            port=port, api_key=key, traffic=traffic, probe_ids=probe_ids, seconds=1.5, rate=200, batch=20
        )
        assert fresh["probes"] >= 1 and fresh["lost"] == 0, fresh
    finally:
        for proc in procs.values():
            proc.stop()

    paths = ["/api/v1/rankings/?window=day&limit=20", *(f"/api/v1/rankings/videos/{v.id}/" for v in videos[2:])]
    reads = bench.py_http_run(port=port, paths=paths, connections=2, seconds=1.0)
    assert reads["rps"] > 0 and reads["errors"] == 0, reads
    ours = bench.in_process_reads(video_ids=[v.id for v in videos[2:]], samples=5)
    assert ours["top20_p50_ms"] > 0

    try:
        load = bench.naive_load()
        with connection.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(events), 0) FROM scoring_hourlycounter")
            assert load["rows"] == cur.fetchone()[0] >= ingest["events"]  # one row per counted event
        naive = {
            **bench.naive_ingest_run(traffic=traffic, seconds=0.5, processes=1),
            **bench.naive_reads_run(video_ids=[v.id for v in videos[2:]], samples=2),
        }
        assert naive["inserts_per_s"] > 0 and naive["top20_p50_ms"] > 0
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM bench_naive_event")
            assert cur.fetchone()[0] == load["rows"]  # the timed inserts are taken out again
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_naive_event")

    results = {
        "profile": {"name": "quick", "runs": 1},
        "machine": bench.machine_info(client),
        "dataset": {
            "videos": len(videos),
            "users": 0,
            "events": 0,
            "zipf": 1.0,
            "counter_rows": 0,
            "ranked_all": reindex["ranked_all"],
            "ranked_day": reindex["ranked_day"],
        },
        "layout": {"web": "live server", "worker": "threads", "clients": 1},
        "reindex": {"runs": [reindex], "median": bench.median_of([reindex]), "memory": reindex},
        "ingest": {"runs": [ingest], "median": bench.median_of([ingest])},
        "freshness": {"runs": [fresh], "median": bench.median_of([fresh])},
        "reads": {
            "runs": [{"top20": reads_row(reads), "video": reads_row(reads)}],
            "median": {"top20": reads_row(reads), "video": reads_row(reads)},
        },
        "compare": {
            "ours": {"ingest_per_s": ingest["end_to_end_per_s"], **ours},
            "naive": naive,
            "naive_rows": load["rows"],
            "naive_load_s": load["load_s"],
            "naive_ingest_x": 1.0,
            "naive_top20_x": 2.0,
            "naive_rank_x": 3.0,
        },
        "duration_s": 1.0,
        "finished": "now",
        "command": "test",
    }
    doc, png = tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"
    bench.doc_update(results, path=doc)
    text = doc.read_text()
    assert "Ingest, end to end" in text and "(not run yet)" in text  # the full section stays untouched
    bench.plot(bench.doc_results(doc), path=png)
    assert png.stat().st_size > 10_000


def reads_row(reads: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_rps": reads["rps"], "max_p50_ms": reads["p50_ms"], "max_p99_ms": reads["p99_ms"],
        "max_connections": reads["connections"], "paced_rps": reads["rps"], "paced_p50_ms": reads["p50_ms"],
        "paced_p99_ms": reads["p99_ms"], "errors": reads["errors"],
    }  # fmt: skip
