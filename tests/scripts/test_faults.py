"""A small run of the fault-injection harness (scripts/faults.py) in every test run:
the real API, bridge, worker and beat; SIGKILLs and a Redis wipe mid-stream."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.redis import redis_client
from events.models import ApiKey
from scoring.rebuild import rankings_rebuild
from tests.processes import Proc, beat, bridge, worker
from tests.scripts_loader import load_script

pytestmark = pytest.mark.cluster

faults = load_script("faults")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_no_event_lost_or_double_counted_through_kills_and_a_redis_wipe(
    make_video: Callable[..., Any], live_server: Any, tmp_path: Path, settings: Any, fresh_topic: str
) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"ingest_key": "1000000/min", "ingest_ip": "1000000/min"},
    }
    rankings_rebuild()
    videos = [make_video(duration_seconds=30 + i) for i in range(40)]
    _, key = ApiKey.objects.create_key(name="faults")
    group = f"faults-{uuid.uuid4().hex[:8]}"
    procs: dict[str, Proc] = {
        "bridge": bridge(tmp_path, group=group),
        "worker": worker(tmp_path),
        "beat": beat(tmp_path),
    }
    restarts = {"bridge": 0, "worker": 0}

    def kill(name: str) -> Callable[[], None]:
        def go() -> None:
            procs[name].stop(signal.SIGKILL)

        return go

    def start(name: str) -> Callable[[], None]:
        def go() -> None:
            restarts[name] += 1
            label = f"{name}{restarts[name]}"
            procs[name] = (
                bridge(tmp_path, group=group, name=label) if name == "bridge" else worker(tmp_path, name=label)
            )

        return go

    controls = faults.Controls(
        post=faults.http_poster(f"{live_server.url}/api/v1/events/", key),
        kill_bridge=kill("bridge"),
        start_bridge=start("bridge"),
        kill_worker=kill("worker"),
        start_worker=start("worker"),
        wipe_redis=lambda: redis_client().flushdb(),
    )
    try:
        report = faults.harness_run(
            controls=controls,
            video_ids=[v.id for v in videos],
            durations={v.id: v.duration_seconds for v in videos},
            events=3000,
            batch=250,
            kills=2,
            wipe=True,
            settle_timeout=120,
        )
    finally:
        for proc in procs.values():
            proc.stop()
    print("\n".join(report.lines()))
    assert report.accepted == 3000
    assert report.resent > 0
    assert (report.lost, report.double_counted) == (0, 0), report.lines()
    assert report.max_score_diff < 1e-6
