"""Small runs of the fault-injection harness (scripts/faults.py) in every test run: the real
API, bridges, workers and beat; SIGKILLs, a Redis wipe, the Kafka broker and Valkey paused
and PostgreSQL restarted mid-stream; on the cluster pass, one master restarted empty."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import close_old_connections

from core.kafka import producer_reset
from core.redis import redis_client
from events.models import ApiKey
from scoring.rebuild import rankings_rebuild
from tests import stack_plugin
from tests.factories import CategoryFactory
from tests.processes import Proc, beat, bridge, wait_for, worker
from tests.scripts.loopback import LoopbackServer
from tests.scripts_loader import load_script

faults = load_script("faults")

# Short enough for every test run, long enough to be felt: the broker stays paused longer
# than the API waits for an acknowledgement, so it answers 503 and the client retries.
PRODUCE_TIMEOUT_S = 1.0
PAUSE_KAFKA_S = 3.0
RATE = 250  # events/s: the stream lasts about 12 s, so the faults meet a pipeline at work
PAUSE_VALKEY_S = 2.0
POSTGRES_DOWN_S = 1.0


class Stack:
    """Bridges and workers as processes of this test, restarted under new names after a kill."""

    def __init__(self, log_dir: Path, *, bridges: int, workers: int) -> None:
        self.log_dir = log_dir
        self.group = f"faults-{uuid.uuid4().hex[:8]}"
        self.procs: dict[str, Proc] = {}
        self.started = 0
        for i in range(1, bridges + 1):
            self.procs[f"bridge{i}"] = bridge(log_dir, group=self.group, name=f"bridge{i}")
        for i in range(1, workers + 1):
            self.procs[f"worker{i}"] = worker(log_dir, name=f"worker{i}")
        self.procs["beat"] = beat(log_dir)

    def wait_ready(self, timeout: float = 90) -> None:
        """Until every bridge has its partitions and every worker takes tasks: the faults are
        meant for a pipeline that is moving, not for processes still starting."""

        def ready() -> bool:
            outputs = {name: proc.output() for name, proc in self.procs.items()}
            return all(
                ("assigned partitions" if name.startswith("bridge") else " ready.") in text
                for name, text in outputs.items()
                if name != "beat"
            )

        assert wait_for(ready, timeout, interval=0.2), {n: p.output()[-1000:] for n, p in self.procs.items()}

    def kill(self, name: str) -> Callable[[], None]:
        def go() -> None:
            self.procs[name].stop(signal.SIGKILL)

        return go

    def start(self, name: str) -> Callable[[], None]:
        def go() -> None:
            self.started += 1
            label = f"{name}-restart{self.started}"
            if name.startswith("bridge"):
                self.procs[name] = bridge(self.log_dir, group=self.group, name=label)
            else:
                self.procs[name] = worker(self.log_dir, name=label)

        return go

    def exited(self) -> list[str]:
        """The processes that stopped although nothing killed them (a killed one is replaced at once)."""
        return [
            f"{name} exited with code {proc.popen.returncode}; its log ends: {proc.output()[-1500:]}"
            for name, proc in self.procs.items()
            if proc.popen.poll() is not None
        ]

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        # A PostgreSQL restart of the run left this process's session dead; teardown needs one.
        close_old_connections()

    def output(self, prefix: str) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.log_dir.glob(f"{prefix}*.log")))


def controls_for(stack: Stack, live_server: Any, key: str) -> Any:
    servers = stack_plugin.STACK
    cluster = stack_plugin.CLUSTER
    return faults.Controls(
        post=faults.http_poster(f"{live_server.url}/api/v1/events/", key),
        kill_bridge=stack.kill("bridge1"),
        start_bridge=stack.start("bridge1"),
        kill_worker=stack.kill("worker1"),
        start_worker=stack.start("worker1"),
        wipe_redis=lambda: redis_client().flushdb(),
        pause_kafka=lambda: servers.pause("tansu"),
        resume_kafka=lambda: servers.resume("tansu"),
        # On the cluster pass this node holds the Celery queues and the cache, not the rankings.
        pause_valkey=lambda: servers.pause("valkey"),
        resume_valkey=lambda: servers.resume("valkey"),
        restart_postgres=servers.postgres_restart,
        restart_master_empty=cluster.cluster_restart_empty if cluster is not None else None,
        master_ports=[node["port"] for node in cluster.load()["cluster"]] if cluster is not None else [],
        exited=stack.exited,
    )


def test_the_plan_spreads_kills_between_the_other_faults() -> None:
    plan = faults.FaultPlan(kills=3, wipe=True, pause_kafka_s=1, restart_postgres_down_s=0, restart_master=True)
    assert plan.order() == [
        "kill bridge", "pause kafka", "kill worker", "wipe redis", "kill bridge", "restart postgres", "restart master",
    ]  # fmt: skip


def test_a_process_that_stopped_on_its_own_fails_the_run_and_is_named() -> None:
    report = faults.Report(accepted=10)
    assert report.ok
    report.exited = ["bridge2 exited with code 1"]
    assert not report.ok
    assert report.lines()[report.lines().index("processes that stopped on their own:") + 1] == (
        "  bridge2 exited with code 1"
    )


def test_the_poster_hands_back_the_answer_and_retry_after(loopback_server: LoopbackServer) -> None:
    post = faults.http_poster(f"http://127.0.0.1:{loopback_server.port}/api/v1/events/", "k1")
    loopback_server.unavailable = 1
    status, body, retry_after = post([{"video_id": 1}])
    assert (status, body["error"]["code"], retry_after) == (503, "kafka_unavailable", 1.0)
    assert post([{"video_id": 1}]) == (202, {"accepted": 1}, None)


@pytest.fixture
def ingest_unthrottled(settings: Any) -> Iterator[None]:
    """The live server's API: no rate limit, and a short wait for Kafka's acknowledgement."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"ingest_key": "1000000/min", "ingest_ip": "1000000/min"},
    }
    settings.KAFKA_PRODUCE_TIMEOUT_S = PRODUCE_TIMEOUT_S
    producer_reset()  # the producer takes its timeouts when it is created
    yield
    producer_reset()


def harness_run(
    videos: list[Any], live_server: Any, tmp_path: Path, *, bridges: int, workers: int, **fault_options: Any
) -> tuple[Any, Stack]:
    """3,000 events at RATE through a stack of its own, with every fault the options name: the report
    (printed) and the stopped stack, whose processes' output stays readable."""
    _, key = ApiKey.objects.create_key(name="faults")
    stack = Stack(tmp_path, bridges=bridges, workers=workers)
    try:
        stack.wait_ready()
        report = faults.harness_run(
            controls=controls_for(stack, live_server, key),
            video_ids=[v.id for v in videos],
            durations={v.id: v.duration_seconds for v in videos},
            events=3000,
            batch=250,
            rate=RATE,
            kills=2,
            pause_kafka_s=PAUSE_KAFKA_S,
            restart_postgres_down_s=POSTGRES_DOWN_S,
            pause_valkey_s=PAUSE_VALKEY_S,
            settle_timeout=120,
            **fault_options,
        )
    finally:
        stack.stop()
    print("\n".join(report.lines()))
    return report, stack


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_no_event_lost_or_double_counted_through_kills_pauses_restarts_and_a_redis_wipe(
    make_video: Callable[..., Any], live_server: Any, tmp_path: Path, fresh_topic: str, ingest_unthrottled: None
) -> None:
    rankings_rebuild()
    videos = [make_video(duration_seconds=30 + i) for i in range(40)]
    report, _ = harness_run(videos, live_server, tmp_path, bridges=1, workers=1, wipe=True)
    assert [f.name for f in report.faults] == [
        "kill bridge", "pause kafka", "kill worker", "wipe redis", "restart postgres", "pause valkey",
    ]  # fmt: skip
    kafka = next(f for f in report.faults if f.name == "pause kafka")
    assert kafka.answers_503["kafka_unavailable"] > 0, "the paused broker was not felt by the API"
    assert report.accepted == 3000
    assert report.resent > 0
    assert report.exited == [], report.lines()
    assert (report.lost, report.double_counted) == (0, 0), report.lines()
    assert report.max_score_diff < 1e-6


@pytest.mark.cluster_only
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_cluster_two_bridges_two_workers_kills_and_a_master_restarted_empty(
    make_video: Callable[..., Any], live_server: Any, tmp_path: Path, fresh_topic: str, ingest_unthrottled: None
) -> None:
    rankings_rebuild()
    # Enough categories for the scopes to spread over the three masters.
    categories = [CategoryFactory(slug=f"faults-{i}") for i in range(5)]
    videos = [make_video(duration_seconds=30 + i, category=categories[i % 5]) for i in range(40)]
    # The master restarted empty is this run's wipe.
    report, stack = harness_run(videos, live_server, tmp_path, bridges=2, workers=2, wipe=False, restart_master=True)
    assert [f.name for f in report.faults] == [
        "kill bridge", "pause kafka", "kill worker", "restart postgres", "pause valkey", "restart master",
    ]  # fmt: skip
    assert report.accepted == 3000
    assert report.exited == [], report.lines()
    assert (report.lost, report.double_counted) == (0, 0), report.lines()
    assert report.max_score_diff < 1e-6
    # Only the restarted master's scopes were rebuilt; the others kept their generation.
    assert report.master_scopes and report.kept_scopes
    assert report.rebuilt_scopes == sorted(report.master_scopes), report.lines()
    assert "rankings rebuilt" in stack.output("worker")
