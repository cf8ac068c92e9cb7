"""scripts/loadgen.py against a real loopback server that stalls once."""

from __future__ import annotations

import json

import pytest

from tests.scripts.loopback import LoopbackServer
from tests.scripts_loader import load_script

loadgen = load_script("loadgen")

STALL_S = 0.5
SLOW_S = 0.3


def workload(batch: int = 1) -> object:
    return loadgen.Workload(
        videos=[(1, 60), (2, 60)], video_cum=[1.0, 1.5], types=["view", "watch"], type_cum=[3.0, 4.0], users=10,
        batch=batch,
    )  # fmt: skip


def test_paced_latency_counts_from_each_requests_send_time_so_a_stall_shows_in_all_it_held(
    loopback_server: LoopbackServer,
) -> None:
    # 50 requests/s on 2 connections for 3 s; the server holds one request for 0.5 s a second in.
    # The ~25 requests due during the stall all wait for it, and those due in its first 0.2 s
    # wait at least 0.3 s. Timed from when each was actually sent (closed loop), only the 2 that
    # were on the wire when it began would show it: the others left after it was over.
    loopback_server.stall_once(after=1.0, seconds=STALL_S)
    stats = loadgen.load_run(
        target=loadgen.Target("127.0.0.1", loopback_server.port), api_key="k", workload=workload(), concurrency=2,
        rate=50.0, duration=3.0, seed=1,
    )  # fmt: skip
    slow = [t for t in stats.total_latencies if t >= SLOW_S]
    assert len(slow) >= 6, sorted(stats.total_latencies)[-12:]
    assert max(slow) >= STALL_S * 0.9
    ordered = sorted(stats.total_latencies)
    assert loadgen.percentile(ordered, 95) >= SLOW_S  # in the percentiles it prints, not only the maximum
    # The schedule held through the stall: every request due in the 3 s went out and was answered.
    assert stats.unsent == 0
    assert 145 <= len(stats.total_latencies) <= 151
    assert stats.total_statuses == {"202": len(stats.total_latencies)}
    assert stats.total_events == len(stats.total_latencies)


def test_unpaced_run_posts_back_to_back(loopback_server: LoopbackServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = loadgen.main(
        ["--url", f"http://127.0.0.1:{loopback_server.port}", "--api-key", "k1", "--videos", "1-5", "--batch", "3",
         "--concurrency", "2", "--duration", "0.5", "--seed", "4", "--json"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["requests"] > 10 and summary["unsent"] == 0
    assert summary["events_accepted"] == 3 * summary["requests"]
    post = loopback_server.requests[0]
    assert (post.method, post.path, post.headers["Authorization"]) == ("POST", "/api/v1/events/", "Api-Key k1")
    assert len(json.loads(post.body)["events"]) == 3


def test_refuses_anything_but_loopback() -> None:
    with pytest.raises(SystemExit, match="loopback"):
        loadgen.target_parse("http://192.168.1.10:8000")
