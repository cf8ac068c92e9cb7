"""The bridge: batching rules without a broker, then the real processes end to end."""

from __future__ import annotations

import json
import socket
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from kafka import KafkaConsumer, TopicPartition

from core import metrics
from events.ingest import api_key_create
from events.producer import events_produce
from events.wire import EVENTS_HEADER, WireEvent
from rankings.selectors import ranking_top
from scoring.bridge import Backlog, Buffer, OffsetCheck, hand_off
from scoring.ledger import batch_store
from scoring.management.commands.kafka_bridge import Command
from scoring.models import Batch
from scoring.rebuild import rankings_rebuild
from tests.api.test_observability import scrape
from tests.conftest import counted
from tests.processes import Proc, bridge, process_env, running, wait_for, worker

pytestmark = pytest.mark.cluster


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_buffer_is_full_at_max_size() -> None:
    buffer = Buffer(max_size=3, max_wait_s=10)
    for offset in range(2):
        buffer.add(FakeRecord("t", 0, offset, b"{}"))
    assert not buffer.full()
    buffer.add(FakeRecord("t", 1, 7, b"{}"))
    assert buffer.full()
    assert buffer.first_offsets == {("t", 0): 0, ("t", 1): 7}  # what the lag counts as not handed on
    messages, offsets = buffer.take()
    assert [m[:2] for m in messages] == [[0, 0], [0, 1], [1, 7]]
    assert offsets == {("t", 0): 2, ("t", 1): 8}  # commit = next offset to read
    assert not buffer.full() and not buffer.expired() and buffer.messages == [] and buffer.first_offsets == {}


def test_buffer_counts_the_events_a_request_record_carries() -> None:
    buffer = Buffer(max_size=500, max_wait_s=10)
    buffer.add(FakeRecord("t", 0, 0, b"{}", [(EVENTS_HEADER, b"300")]))
    assert buffer.events == 300 and not buffer.full()
    buffer.add(FakeRecord("t", 0, 1, b"{}"))  # a single-event record (no header) is one event
    buffer.add(FakeRecord("t", 1, 0, b"{}", [(EVENTS_HEADER, b"junk")]))  # an unreadable count is one too
    assert buffer.events == 302 and not buffer.full()
    buffer.add(FakeRecord("t", 1, 1, b"{}", [(EVENTS_HEADER, b"250")]))
    assert buffer.full()  # 552 events: a record is never split, so a batch may pass max_size by one record
    messages, _ = buffer.take()
    assert len(messages) == 4 and buffer.events == 0


def test_buffer_expires_max_wait_after_its_first_message() -> None:
    clock = Clock()
    buffer = Buffer(max_size=500, max_wait_s=0.1, clock=clock)
    assert not buffer.expired()
    buffer.add(FakeRecord("t", 0, 0, b"{}"))
    clock.now += 0.05
    assert not buffer.expired()
    clock.now += 0.06
    assert buffer.expired() and not buffer.full()


def test_an_expired_batch_is_held_while_the_workers_are_behind_up_to_ten_times_max_wait() -> None:
    clock, behind = Clock(), [True]
    buffer = Buffer(max_size=500, max_wait_s=0.1, clock=clock)
    buffer.add(FakeRecord("t", 0, 0, b"{}"))
    assert not buffer.due(behind=lambda: behind[0])
    clock.now += 0.15
    assert not buffer.due(behind=lambda: behind[0])  # expired, held
    behind[0] = False
    assert buffer.due(behind=lambda: behind[0])  # the workers caught up
    behind[0] = True
    clock.now += 0.86  # 1.01 s: held long enough, whatever the workers do
    assert buffer.due(behind=lambda: behind[0])
    buffer.add(FakeRecord("t", 0, 1, b"{}", [(EVENTS_HEADER, b"499")]))
    assert buffer.due(behind=lambda: pytest.fail("a full batch goes on without asking"))


def test_backlog_is_behind_from_its_limit_and_asks_postgres_at_most_once_per_interval() -> None:
    clock, waiting, asked = Clock(), [2], []

    def count(limit: int) -> int:
        asked.append(limit)
        return min(waiting[0], limit)

    backlog = Backlog(limit=3, count=count, every_s=0.02, clock=clock)
    assert not backlog.behind()
    waiting[0] = 5
    assert not backlog.behind() and asked == [3]  # the answer of 0.00 s ago stands
    clock.now += 0.025
    assert backlog.behind() and asked == [3, 3]
    waiting[0] = 1
    clock.now += 0.03
    assert not backlog.behind()


def test_backlog_never_holds_with_limit_0_nor_when_postgres_does_not_answer() -> None:
    def down(limit: int) -> int:
        raise OperationalError("connection refused")

    assert not Backlog(limit=0, count=lambda limit: 99).behind()
    assert not Backlog(limit=3, count=down).behind()  # the hand-off itself retries until Postgres is back


def test_a_record_past_the_expected_offset_is_read_again_and_a_gap_the_broker_confirms_is_taken() -> None:
    check = OffsetCheck()
    assert [check.verdict(FakeRecord("t", 0, o, b"{}")) for o in (5, 6)] == ["take", "take"]  # the first sets it
    assert check.verdict(FakeRecord("t", 0, 8, b"{}")) == "reread" and check.wanted(FakeRecord("t", 0, 8, None)) == 7
    assert check.verdict(FakeRecord("t", 0, 6, b"{}")) == "skip"  # taken before the seek back
    assert [check.verdict(FakeRecord("t", 0, o, b"{}")) for o in (7, 8)] == ["take", "take"]
    # The same gap twice: the broker has nothing at 9, so 10 is taken.
    assert check.verdict(FakeRecord("t", 0, 10, b"{}")) == "reread"
    assert check.verdict(FakeRecord("t", 0, 10, b"{}")) == "take"
    assert check.verdict(FakeRecord("t", 0, 13, b"{}")) == "reread"  # a new gap is read again
    assert check.verdict(FakeRecord("t", 1, 40, b"{}")) == "take"  # partitions are apart
    check.forget([("t", 0)])  # a rebalance: the partition starts where the committed offset says
    assert check.verdict(FakeRecord("t", 0, 3, b"{}")) == "take"


@pytest.mark.django_db
def test_the_bridge_reads_again_a_record_the_consumer_skipped(
    make_video: Callable[..., Any], fresh_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The client skipping a record (the consumer's position moved past it, as kafka-python once did
    under load) must not lose it: the bridge sees the gap, seeks back and takes it, in order."""
    videos = [make_video() for _ in range(12)]
    cmd = Command()
    cmd.topic, cmd.stop = fresh_topic, False
    cmd.buffer, cmd.offsets = Buffer(max_size=100_000, max_wait_s=600), OffsetCheck()
    cmd.consumer = KafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    try:
        parts = [TopicPartition(fresh_topic, p) for p in sorted(cmd.consumer.partitions_for_topic(fresh_topic))]
        cmd.consumer.assign(parts)
        cmd.consumer.seek_to_beginning()
        produce([event(v.id) for v in videos])

        def taken() -> dict[int, list[int]]:
            out: dict[int, list[int]] = {}
            for partition, offset, _ in cmd.buffer.messages:
                out.setdefault(partition, []).append(offset)
            return out

        def polled_to(ends: dict[int, int]) -> bool:
            cmd.poll_once()
            return all(max(taken().get(p, [-1])) + 1 >= end for p, end in ends.items() if end)

        assert wait_for(lambda: polled_to(end_offsets()), timeout=30), taken()
        produce([event(v.id) for v in videos])
        produce([event(v.id, "share") for v in videos])
        ends = end_offsets()
        skipped = next(tp for tp in parts if ends[tp.partition] >= 3)
        cmd.consumer.seek(skipped, ends[skipped.partition] - 1)  # past the second request's record
        assert wait_for(lambda: polled_to(ends), timeout=30), taken()
    finally:
        cmd.consumer.close()
    assert taken() == {p: list(range(end)) for p, end in ends.items() if end}  # each record once, in order
    assert sum(len(json.loads(raw)["events"]) for _, _, raw in cmd.buffer.messages) == 36
    assert f"partition {skipped.partition} delivered offset" in caplog.text


@pytest.mark.django_db
def test_hand_off_keeps_the_batch_when_celery_is_unreachable() -> None:
    def broken_enqueue(batch_id: str) -> None:
        raise ConnectionError("broker down")

    batch_id = hand_off(topic="t", messages=[[0, 0, "{}"]], enqueue=broken_enqueue)
    assert Batch.objects.get(id=batch_id).processed_at is None  # the sweeper will queue it


def committed_offsets(group: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=group)
    try:
        parts = consumer.partitions_for_topic(settings.KAFKA_TOPIC) or set()
        found = {p: consumer.committed(TopicPartition(settings.KAFKA_TOPIC, p)) for p in parts}
        return {p: off for p, off in found.items() if off is not None}
    finally:
        consumer.close()


def end_offsets() -> dict[int, int]:
    """Next offset per partition, read from the records themselves.

    (Tansu's ListOffsets answers the last batch's base offset + 1, so
    ``end_offsets`` undercounts when a produce request carried several records.)
    """
    consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, consumer_timeout_ms=1000)
    try:
        parts = [TopicPartition(settings.KAFKA_TOPIC, p) for p in consumer.partitions_for_topic(settings.KAFKA_TOPIC)]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = {tp.partition: 0 for tp in parts}
        for record in consumer:
            ends[record.partition] = max(ends[record.partition], record.offset + 1)
        return ends
    finally:
        consumer.close()


def event(video_id: int, type_: str = "like") -> WireEvent:
    return WireEvent(event_id=str(uuid.uuid4()), video_id=video_id, type=type_, occurred_at=timezone.now())


def produce(events: list[WireEvent]) -> None:
    events_produce(events=events, request_id=f"test-{uuid.uuid4().hex[:8]}", accepted_at=timezone.now())


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_events_reach_the_rankings_through_bridge_and_worker_and_offsets_are_committed(
    make_video: Callable[..., Any], tmp_path: Path, fresh_topic: str
) -> None:
    rankings_rebuild()
    videos = [make_video() for _ in range(3)]
    group = f"bridge-{uuid.uuid4().hex[:8]}"
    with running(bridge(tmp_path, group=group), worker(tmp_path)) as (br, _wk):
        produce([event(videos[0].id, "share")])

        def ranked() -> dict[int, float]:
            return {e.video["id"]: e.score for e in ranking_top(window="day").results}

        # The first batch also waits for the consumer group to form.
        assert wait_for(lambda: ranked() == {videos[0].id: 50.0}, timeout=60), br.output()[-3000:]
        produce([event(v.id) for v in videos] + [event(videos[2].id, "comment")])
        assert wait_for(lambda: ranked() == {videos[0].id: 55.0, videos[2].id: 15.0, videos[1].id: 5.0}, timeout=1.0)
        assert br.stop() == 0
        assert "bridge stopped" in br.output()
    ends = end_offsets()
    committed = committed_offsets(group)
    assert {p: committed.get(p, 0) for p in ends} == ends


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_two_bridges_share_the_partitions(make_video: Callable[..., Any], tmp_path: Path, fresh_topic: str) -> None:
    rankings_rebuild()
    video = make_video()
    group = f"bridge-{uuid.uuid4().hex[:8]}"
    one, two = bridge(tmp_path, group=group, name="bridge1"), bridge(tmp_path, group=group, name="bridge2")
    with running(one, two, worker(tmp_path)) as (_, _, wk):
        assert wait_for(
            lambda: "assigned partitions" in one.output() and "assigned partitions" in two.output(), timeout=60
        ), one.output()[-2000:] + two.output()[-2000:]
        produce([event(video.id) for _ in range(40)])
        assert wait_for(lambda: [e.score for e in ranking_top(window="all").results] == [200.0], timeout=30), (
            [e.score for e in ranking_top(window="all").results],
            one.output()[-1500:],
            two.output()[-1500:],
            wk.output()[-3000:],
        )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_backlog_is_handed_on_in_batches_of_the_configured_size(
    make_video: Callable[..., Any], tmp_path: Path, fresh_topic: str
) -> None:
    """Records waiting when the bridge starts come in one poll; they still go on a batch at a time."""
    rankings_rebuild()
    videos = [make_video() for _ in range(30)]
    for _ in range(8):  # 8 requests of 60 events: request records of ~10 events on each of the partitions
        produce([event(v.id, kind) for v in videos for kind in ("like", "view")])
    group = f"bridge-{uuid.uuid4().hex[:8]}"
    with running(bridge(tmp_path, group=group, batch_size=100), worker(tmp_path)) as (br, wk):
        assert wait_for(
            lambda: sum(Batch.objects.filter(processed_at__isnull=False).values_list("counted", flat=True)) == 480,
            timeout=60,
        ), br.output()[-2000:] + wk.output()[-2000:]
    sizes = sorted(Batch.objects.filter(source=Batch.Source.KAFKA).values_list("counted", flat=True))
    largest_record = 60  # a request record is never split: a batch passes the size by less than one
    assert len(sizes) >= 4 and max(sizes) < 100 + largest_record, sizes
    assert {e.score for e in ranking_top(window="day", limit=100).results} == {6.0 * 8}  # a like 5, a view 1


def batch_events(batch: Batch) -> int:
    return sum(len(json.loads(raw)["events"]) for _, _, raw in batch.payload["messages"])


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_while_the_workers_are_behind_the_bridge_fills_its_batches_and_hands_on_once_they_catch_up(
    make_video: Callable[..., Any], tmp_path: Path, fresh_topic: str
) -> None:
    """Requests arriving slower than --max-wait-ms would each be a batch of their own; with 3 batches
    waiting to be counted (no worker runs) the bridge fills its batch to --batch-size instead, and
    hands on the rest within --max-wait-ms of the backlog being counted."""
    videos = [make_video() for _ in range(10)]
    for _ in range(3):
        batch_store(topic="earlier", messages=[], source=Batch.Source.REPLAY)
    group = f"bridge-{uuid.uuid4().hex[:8]}"
    with running(bridge(tmp_path, group=group, batch_size=100, max_wait_ms=200)) as (br,):
        assert wait_for(lambda: "assigned partitions" in br.output(), timeout=60), br.output()[-2000:]
        for _ in range(7):  # 7 requests of 20 events, 0.25 s apart: each past the 0.2 s wait before the next
            produce([event(v.id, kind) for v in videos for kind in ("like", "view")])
            time.sleep(0.25)
        time.sleep(0.3)  # the last 40 events: held 0.55 s so far, under the 2 s bound
        held = list(Batch.objects.filter(source=Batch.Source.KAFKA).order_by("received_at"))
        Batch.objects.update(processed_at=timezone.now())  # the workers caught up
        assert wait_for(lambda: Batch.objects.filter(source=Batch.Source.KAFKA).count() == 2, timeout=10)
    sizes = [batch_events(b) for b in Batch.objects.filter(source=Batch.Source.KAFKA).order_by("received_at")]
    assert [batch_events(b) for b in held] == [100] and sizes == [100, 40], (sizes, br.output()[-2000:])


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_event_id_repeated_in_one_request_counts_once_end_to_end(
    client: Any, make_video: Callable[..., Any], tmp_path: Path, fresh_topic: str
) -> None:
    rankings_rebuild()
    first, second = make_video(), make_video()
    _, raw_key = api_key_create(name="offline queue")
    dup = str(uuid.uuid4())

    def post(events: list[dict[str, Any]]) -> Any:
        return client.post(
            "/api/v1/events/",
            data=json.dumps({"events": events}),
            content_type="application/json",
            headers={"Authorization": f"Api-Key {raw_key}"},
        )

    def ranked() -> dict[int, float]:
        return {e.video["id"]: e.score for e in ranking_top(window="day").results}

    group = f"bridge-{uuid.uuid4().hex[:8]}"
    with running(bridge(tmp_path, group=group), worker(tmp_path)) as (br, wk):
        response = post(
            [
                {"event_id": dup, "video_id": first.id, "type": "like"},
                {"video_id": second.id, "type": "view"},
                {"event_id": dup, "video_id": first.id, "type": "share"},  # the first occurrence wins
                {"event_id": dup, "video_id": first.id, "type": "like"},
            ]
        )
        assert response.status_code == 202, response.content
        assert response.json()["accepted"] == 4
        assert wait_for(lambda: ranked() == {first.id: 5.0, second.id: 1.0}, timeout=60), (
            ranked(),
            br.output()[-2000:],
            wk.output()[-2000:],
        )
        # A later event of the same video (same partition, so read after the repeats) is counted on top of one like.
        assert post([{"video_id": first.id, "type": "view"}]).status_code == 202
        assert wait_for(lambda: ranked().get(first.id) == 6.0, timeout=30), ranked()
    assert ranked() == {first.id: 6.0, second.id: 1.0}
    assert (counted(first.id, "like")[0], counted(first.id, "view")[0], counted(second.id)[0]) == (1, 1, 1)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_bridge_keeps_reporting_lag_per_partition_while_postgres_is_down(
    client: Client, make_video: Callable[..., Any], tmp_path: Path, fresh_topic: str
) -> None:
    """Lag matters most when the bridge cannot hand batches on; it must not go silent then."""
    metrics.metrics_reset()
    videos = [make_video() for _ in range(6)]
    dead = f"postgres://postgres@127.0.0.1:{closed_port()}/nowhere"
    argv = [sys.executable, "manage.py", "kafka_bridge", "--group", f"lag-{uuid.uuid4().hex[:8]}",
            "--max-wait-ms", "50", "--lag-every-s", "1"]  # fmt: skip
    with running(Proc("bridge", argv, tmp_path, process_env(DATABASE_URL=dead))) as (br,):
        assert wait_for(lambda: "assigned partitions" in br.output(), timeout=60), br.output()[-2000:]
        for video in videos * 3:  # one produce request per event: Tansu reports exact end offsets then
            produce([event(video.id)])
        assert wait_for(lambda: "Postgres unavailable" in br.output(), timeout=30), br.output()[-2000:]

        def lag() -> dict[str, float]:
            found = scrape(client).get("ranking_bridge_lag_messages", {})
            return {dict(labels)["partition"]: v for labels, v in found.items()}

        assert wait_for(lambda: sum(lag().values()) > 0, timeout=15, interval=0.5), (lag(), br.output()[-2000:])
        partitions = {str(p) for p in end_offsets()}
        assert set(lag()) == partitions, "one series per partition"


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_rebalance_hands_on_and_commits_what_the_bridge_holds_and_the_bridge_keeps_running(
    make_video: Callable[..., Any], tmp_path: Path, fresh_topic: str
) -> None:
    """A second bridge joining while the first holds a partial batch: the first stores it as a batch
    and commits its offsets before giving partitions away, so nobody reads those records twice."""
    rankings_rebuild()
    videos = [make_video() for _ in range(12)]
    batches = Batch.objects.filter(source=Batch.Source.KAFKA)  # not the curation moves of make_video
    group = f"bridge-{uuid.uuid4().hex[:8]}"
    # A batch this bridge holds only closes on a rebalance or at shutdown.
    one = bridge(tmp_path, group=group, name="bridge1", max_wait_ms=600_000)
    with running(one) as _:
        assert wait_for(lambda: "assigned partitions" in one.output(), timeout=60), one.output()[-2000:]
        produce([event(v.id) for v in videos])
        time.sleep(3)  # the bridge polls at least twice a second: it holds the records by now
        assert batches.count() == 0
        with running(bridge(tmp_path, group=group, name="bridge2")) as (two,):
            assert wait_for(lambda: "assigned partitions" in two.output(), timeout=60), two.output()[-2000:]
            assert wait_for(lambda: batches.count() == 1, timeout=30), one.output()[-2000:]
            produce([event(v.id, "share") for v in videos])  # read by whichever owns each partition now
            assert wait_for(lambda: batches.count() >= 2, timeout=30), two.output()[-2000:]
            assert one.popen.poll() is None, one.output()[-3000:]
            assert "failed on_partitions_revoked" not in one.output()
    with running(worker(tmp_path)):
        assert wait_for(lambda: not batches.filter(processed_at__isnull=True).exists(), timeout=60)
    # Each record went into exactly one batch: the second bridge started from the committed offsets.
    assert sum(batches.values_list("counted", flat=True)) == 24
    assert {e.score for e in ranking_top(window="day", limit=100).results} == {55.0}
    ends, committed = end_offsets(), committed_offsets(group)
    assert {p: committed.get(p, 0) for p in ends} == ends
