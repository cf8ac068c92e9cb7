"""Probes, Prometheus metrics and structured logs with a request id that follows an event."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from core.logging import JsonFormatter, PlainFormatter, request_id_var
from events.ingest import api_key_create, api_key_mark_used_reset
from events.selectors import api_key_cache_clear, event_type_names_cache_clear
from scoring.ledger import batch_process, batch_store, batches_repair
from scoring.models import Batch, DeadLetter
from scoring.tasks import batch_process as events_batch_process
from tests.conftest import wire
from tests.events.test_api_ingest import Topic

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    for clear in (api_key_cache_clear, event_type_names_cache_clear, api_key_mark_used_reset):
        clear()
    metrics.gauge_sources_cache_clear()
    metrics.metrics_recording_resume()
    metrics.metrics_reset()  # figures other tests recorded may still be on their way to Redis
    yield
    metrics.gauge_sources_cache_clear()
    metrics.metrics_recording_resume()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(client: Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


@pytest.fixture
def video(make_video: Callable[..., Any], rankings_ready: None) -> Any:
    return make_video()


@pytest.fixture
def post(client: Client) -> Callable[..., Any]:
    raw_key = api_key_create(name="observability")[1]

    def send(body: Any, key: str | None = raw_key, **extra: Any) -> Any:
        auth = {"Authorization": f"Api-Key {key}"} if key else {}
        return client.post("/api/v1/events/", json.dumps(body), content_type="application/json", headers=auth, **extra)

    return send


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the root logger writes through the JSON formatter, parsed line by line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)


# --- probes -------------------------------------------------------------------------------


def test_healthz_answers_whatever_the_backing_services_do(client: Client) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    with override_settings(REDIS_URL=f"redis://{dead}/0", KAFKA_BOOTSTRAP_SERVERS=[dead]):
        response = client.get("/healthz", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_dependency(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgres", "redis", "kafka"}
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["latency_ms"] >= 0


@pytest.mark.parametrize("down", ["kafka", "redis"])
def test_readyz_is_503_naming_the_dependency_that_is_down(client: Client, down: str) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    overrides: dict[str, dict[str, Any]] = {
        "kafka": {"KAFKA_BOOTSTRAP_SERVERS": [dead]},
        "redis": {"REDIS_URL": f"redis://{dead}/0"},
    }
    started = time.monotonic()
    with override_settings(**overrides[down]):
        response = client.get("/readyz")
    assert time.monotonic() - started < 4, "a dead dependency must cost one short timeout"
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"][down]["status"] == "error" and body["checks"][down]["error"]
    assert dead not in json.dumps(body), "internal addresses stay in the log"
    assert all(body["checks"][name]["status"] == "ok" for name in body["checks"] if name != down)


# --- metrics --------------------------------------------------------------------------------


def test_ingest_counts_events_accepted_and_rejected_by_reason(
    client: Client, post: Callable[..., Any], video: Any
) -> None:
    ok = {"video_id": video.id, "type": "view"}
    assert post({"events": [ok, ok, ok]}).status_code == 202
    assert post(ok).status_code == 202
    assert post({"events": [ok, {**ok, "type": "nope"}]}).status_code == 400
    assert post(ok, key=None).status_code == 401
    samples = scrape(client)
    assert value(samples, "ranking_events_accepted_total") == 4
    assert value(samples, "ranking_events_rejected_total", reason="invalid") == 2
    assert value(samples, "ranking_events_rejected_total", reason="not_authenticated") == 1
    assert value(samples, "ranking_produce_seconds_count") == 2
    assert 0 < value(samples, "ranking_produce_seconds_sum") < 10


def test_ranking_reads_are_timed_per_endpoint(client: Client, video: Any) -> None:
    for url in ("/api/v1/rankings/", "/api/v1/rankings/?window=week", "/api/v1/rankings/movers/", "/api/v1/videos/"):
        assert client.get(url).status_code == 200
    assert client.get("/api/v1/rankings/?window=month").status_code == 400
    samples = scrape(client)
    assert value(samples, "ranking_read_seconds_count", endpoint="rankings_list") == 3
    assert value(samples, "ranking_read_seconds_count", endpoint="rankings_movers") == 1
    assert "rankings_videos" not in json.dumps(list(samples["ranking_read_seconds_count"]))
    buckets = sorted(
        ((float(dict(labels)["le"]), v) for labels, v in samples["ranking_read_seconds_bucket"].items()
         if dict(labels)["endpoint"] == "rankings_list"),
    )  # fmt: skip
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), "buckets are cumulative"
    assert buckets[-1] == (float("inf"), 3)


def test_bridge_lag_batches_and_dead_letters(client: Client, video: Any) -> None:
    metrics.bridge_lag_record(lag={0: 12, 3: 0})
    batch = batch_store(topic="t", messages=[[0, n, wire(video.id)] for n in range(3)] + [[0, 3, "not json"]])
    events_batch_process(str(batch.id))
    DeadLetter.objects.create(reason="old", raw="{}", replayed_at=timezone.now())
    samples = scrape(client)
    assert value(samples, "ranking_bridge_lag_messages", partition="0") == 12
    assert value(samples, "ranking_bridge_lag_messages", partition="3") == 0
    assert value(samples, "ranking_batch_size_messages_count") == 1
    assert value(samples, "ranking_batch_size_messages_sum") == 4
    assert value(samples, "ranking_batch_duration_seconds_count") == 1
    assert value(samples, "ranking_dead_letters", state="pending") == 1
    assert value(samples, "ranking_dead_letters", state="replayed") == 1


def test_write_path_counts_events_duplicates_and_dead_letters_by_reason(client: Client, video: Any) -> None:
    repeated = wire(video.id, "like")
    raws = [wire(video.id), wire(video.id, "share"), repeated, repeated, "not json", wire(987654), "[]"]
    batch = batch_store(topic="t", messages=[[0, n, raw] for n, raw in enumerate(raws)])
    events_batch_process(str(batch.id))
    samples = scrape(client)
    assert value(samples, "ranking_events_counted_total") == 3
    assert value(samples, "ranking_events_duplicate_total") == 1
    assert value(samples, "ranking_events_dead_lettered_total", reason="not_json") == 1
    assert value(samples, "ranking_events_dead_lettered_total", reason="not_object") == 1
    assert value(samples, "ranking_events_dead_lettered_total", reason="unknown_video") == 1
    assert all("987654" not in dict(labels)["reason"] for labels in samples["ranking_events_dead_lettered_total"])


def test_batches_pending_are_read_from_the_ledger_by_state(client: Client, video: Any) -> None:
    def stored() -> str:
        return str(batch_store(topic="t", messages=[[0, 0, wire(video.id)]]).id)

    stored()  # received, its task not run yet
    batch_process(batch_id=stored(), apply=False)  # counted; the worker died before Redis
    Batch.objects.filter(id=stored()).update(failed_at=timezone.now(), error="DataError: x")
    events_batch_process(stored())  # done: in no state
    samples = scrape(client)
    assert value(samples, "ranking_batches_pending", state="unprocessed") == 1
    assert value(samples, "ranking_batches_pending", state="unapplied") == 1
    assert value(samples, "ranking_batches_pending", state="failed") == 1


def test_event_to_visible_latency_runs_from_the_api_to_the_redis_apply(
    client: Client, post: Callable[..., Any], video: Any
) -> None:
    topic = Topic()
    before = topic.end_offsets()
    posted_at = time.time()
    response = post({"events": [{"video_id": video.id, "type": t} for t in ("view", "like", "share")]})
    assert response.status_code == 202
    event_ids = response.json()["event_ids"]
    found = topic.read_ids(before, event_ids)
    messages = [found[event_id][0][1] for event_id in event_ids]
    assert all(m["accepted_at"] == messages[0]["accepted_at"] for m in messages), "one request, one acceptance"

    # As the bridge hands them on; one is a redelivery, which is counted once and measured once.
    raws = [json.dumps(m) for m in [*messages, messages[0]]]
    events_batch_process(str(batch_store(topic=topic.name, messages=[[0, n, r] for n, r in enumerate(raws)]).id))
    elapsed = time.time() - posted_at
    samples = scrape(client)
    assert value(samples, "ranking_event_visible_seconds_count") == 3
    assert 0 < value(samples, "ranking_event_visible_seconds_sum") / 3 <= elapsed

    # A batch whose worker died after the commit becomes visible when the sweeper applies it.
    late = batch_store(topic=topic.name, messages=[[0, 0, json.dumps({**messages[0], "event_id": str(uuid.uuid4())})]])
    batch_process(batch_id=str(late.id), apply=False)
    time.sleep(0.3)
    batches_repair(requeue=False, unapplied_after_s=0)
    samples = scrape(client)
    assert value(samples, "ranking_event_visible_seconds_count") == 4
    assert value(samples, "ranking_event_visible_seconds_bucket", le="0.25") <= 3, "the late one waited > 0.3 s"


def test_a_message_without_a_readable_accepted_at_still_counts(client: Client, video: Any) -> None:
    raws = [wire(video.id), json.dumps({**json.loads(wire(video.id)), "accepted_at": "yesterday"})]
    events_batch_process(str(batch_store(topic="t", messages=[[0, n, raw] for n, raw in enumerate(raws)]).id))
    samples = scrape(client)
    assert value(samples, "ranking_events_counted_total") == 2
    assert value(samples, "ranking_event_visible_seconds_count") == 0


def test_dead_letter_count_is_cached_briefly(client: Client, django_assert_num_queries: Any) -> None:
    scrape(client)
    DeadLetter.objects.create(reason="late", raw="{}")
    with django_assert_num_queries(0):
        samples = scrape(client)
    assert value(samples, "ranking_dead_letters", state="pending") == 0
    metrics.gauge_sources_cache_clear()
    assert value(scrape(client), "ranking_dead_letters", state="pending") == 1


def test_metrics_recorded_in_another_process_are_exposed_here(client: Client) -> None:
    code = (
        "import django; django.setup(); from core import metrics; "
        "metrics.events_accepted(7); metrics.batch_observed(250, 0.04)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    samples = scrape(client)
    assert value(samples, "ranking_events_accepted_total") == 7
    assert value(samples, "ranking_batch_size_messages_bucket", le="250.0") == 1
    assert value(samples, "ranking_batch_size_messages_bucket", le="100.0") == 0


def test_metrics_store_down_neither_fails_requests_nor_the_scrape(client: Client) -> None:
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    with override_settings(METRICS_REDIS_URL=dead):
        metrics.events_accepted(1)  # in memory: no network on the request path
        started = time.monotonic()
        metrics.metrics_flush()
        metrics.events_accepted(1)
        metrics.metrics_flush()  # paused after the failure: no second connection attempt
        assert time.monotonic() - started < 3
        response = client.get("/metrics")
    assert response.status_code == 200
    assert "ranking_metrics_store_up 0.0" in response.content.decode()
    metrics.metrics_recording_resume()
    samples = scrape(client)
    assert value(samples, "ranking_metrics_store_up") == 1
    assert value(samples, "ranking_events_accepted_total") == 0, "figures of the pause are dropped, not replayed"


def test_recording_is_buffered_and_flushed_in_the_background(client: Client) -> None:
    from core.redis import plain_redis_client as redis_client

    metrics.events_accepted(3)
    assert not redis_client().exists(metrics.EVENTS_ACCEPTED.key), "nothing written on the request path"
    deadline = time.monotonic() + 5
    while not redis_client().exists(metrics.EVENTS_ACCEPTED.key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_client().hget(metrics.EVENTS_ACCEPTED.key, "") == b"3"


def test_label_values_are_bounded() -> None:
    assert metrics.label_value("Rankings-List") == "rankings_list"
    assert metrics.label_value("x" * 100) == "x" * 40
    assert metrics.label_value("") == "unknown"


# --- request id and structured logs ------------------------------------------------------------------


def test_request_id_is_taken_when_plain_and_made_otherwise(client: Client) -> None:
    assert client.get("/healthz", HTTP_X_REQUEST_ID="trace-42.a:b")["X-Request-ID"] == "trace-42.a:b"
    for bad in ("has space", "x" * 129, "semi;colon"):
        made = client.get("/healthz", HTTP_X_REQUEST_ID=bad)["X-Request-ID"]
        assert uuid.UUID(made).version == 4, bad
    assert uuid.UUID(client.get("/api/v1/rankings/")["X-Request-ID"]).version == 4


def test_each_request_logs_one_json_line_with_its_request_id(
    client: Client, video: Any, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    client.get("/api/v1/rankings/?window=week", HTTP_X_REQUEST_ID="trace-log-1")
    access = [line for line in log_lines() if line["logger"] == "ranking_site.request"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "trace-log-1"
    assert line["level"] == "INFO"
    assert (line["method"], line["path"], line["status"], line["route"]) == (
        "GET",
        "/api/v1/rankings/",
        200,
        "rankings-list",
    )
    assert line["duration_ms"] >= 0 and line["ts"].endswith("+00:00")
    assert request_id_var.get() is None, "the id must not leak into whatever the thread does next"


def test_request_id_follows_an_event_from_the_api_to_kafka_and_the_worker(
    post: Callable[..., Any], video: Any, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    topic = Topic()
    before = topic.end_offsets()
    response = post({"video_id": video.id, "type": "like"}, HTTP_X_REQUEST_ID="trace-e2e-7")
    assert response.status_code == 202
    assert response["X-Request-ID"] == "trace-e2e-7"
    (event_id,) = response.json()["event_ids"]
    ((_, message),) = topic.read_ids(before, [event_id])[event_id]
    assert message["request_id"] == "trace-e2e-7"
    api_lines = [line for line in log_lines() if line["request_id"] == "trace-e2e-7"]
    assert any(line["logger"] == "ranking_site.request" and line["status"] == 202 for line in api_lines)

    # The worker gets the message as the bridge stores it.
    batch = batch_store(topic=topic.name, messages=[[0, 0, json.dumps(message)]])
    events_batch_process(str(batch.id))
    (worker,) = [line for line in log_lines() if line["logger"] == "scoring.tasks"]
    assert worker["batch_id"] == str(batch.id)
    assert (worker["received"], worker["counted"]) == (1, 1)
    assert worker["duration_ms"] >= 0


def test_worker_log_names_the_request_ids_of_its_batch(
    video: Any, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    raws = [json.dumps({**json.loads(wire(video.id)), "request_id": rid}) for rid in ("req-a", "req-b", "req-a")]
    batch = batch_store(topic="t", messages=[[0, n, raw] for n, raw in enumerate(raws)])
    events_batch_process(str(batch.id))
    (worker,) = [line for line in log_lines() if line["logger"] == "scoring.tasks"]
    assert sorted(worker["request_ids"]) == ["req-a", "req-b"]


def test_json_formatter_keeps_extras_and_exceptions() -> None:
    logger = logging.getLogger("test.json")
    record = logger.makeRecord(
        "test.json", logging.ERROR, __file__, 1, "failed %s", ("x",), None, extra={"batch_id": "b1", "ids": {1, 2}}
    )
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    token = request_id_var.set("rid-9")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "failed x" and line["level"] == "ERROR" and line["logger"] == "test.json"
    assert line["request_id"] == "rid-9"
    assert line["batch_id"] == "b1" and sorted(line["ids"]) == [1, 2]
    assert "ValueError: boom" in line["exc_info"]
    assert "\n" not in JsonFormatter().format(record), "one line per record"


def test_plain_formatter_shows_the_request_id_without_touching_the_record() -> None:
    record = logging.getLogger("t").makeRecord("t", logging.INFO, __file__, 1, "hello", (), None)
    token = request_id_var.set("rid-plain")
    try:
        text = PlainFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert "[rid-plain] hello" in text
    assert not hasattr(record, "request_id")
