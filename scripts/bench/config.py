"""Where the benchmark keeps its files, the process layout, the targets and the two profiles."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
