"""The read stage's Python load generator against a real loopback server that stalls once."""

from __future__ import annotations

from tests.scripts.loopback import LoopbackServer
from tests.scripts_loader import load_script

reads = load_script("bench.reads")

PATHS = ["/api/v1/rankings/?window=day&limit=20", "/api/v1/rankings/videos/1/"]


def test_paced_reads_put_a_stall_in_the_p99_of_every_request_it_held_back(loopback_server: LoopbackServer) -> None:
    # 200 requests/s on 4 connections for 3 s (600 requests); the server holds one request for
    # 0.5 s a second in. About 40 requests fall due in the stall's first 0.2 s and wait >= 0.3 s
    # for it: 7% of the run, well inside the p99. Timed from when each was actually sent, only
    # the 4 on the wire when it began would show it, under 1%: the p99 would not.
    loopback_server.stall_once(after=1.2, seconds=0.5)
    paced = reads.open_loop_run(port=loopback_server.port, paths=PATHS, connections=4, seconds=3.0, rate=200.0)
    assert paced["p99_ms"] >= 300, paced
    assert paced["p50_ms"] < 100, paced  # the rest of the run was quick
    assert paced["errors"] == 0 and paced["unsent"] == 0, paced
    assert 180 <= paced["rps"] <= 215, paced  # the schedule's rate, stall or not
    assert len(loopback_server.requests) == 600


def test_closed_loop_reads(loopback_server: LoopbackServer) -> None:
    closed = reads.py_http_run(port=loopback_server.port, paths=PATHS, connections=2, seconds=0.5)
    assert closed["rps"] > 50 and closed["errors"] == 0 and closed["unsent"] == 0, closed
    assert {r.path for r in loopback_server.requests} == set(PATHS)
