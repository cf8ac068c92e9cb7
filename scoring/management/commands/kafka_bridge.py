"""Forward Kafka batches to Celery; see scoring/bridge.py for the guarantees."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections
from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from core.heap import heap_settle
from core.kafka import topic_ensure
from core.metrics import bridge_lag_record
from scoring.bridge import Backlog, Buffer, OffsetCheck, celery_enqueue, hand_off
from scoring.selectors import batches_unprocessed_count

logger = logging.getLogger("scoring.bridge")


class _Rebalance(AsyncConsumerRebalanceListener):
    """kafka-python calls these on its IO thread while the main thread waits in ``poll()``, so the
    buffer is this listener's alone meanwhile. A blocking commit cannot run on that thread (it would
    wait for itself): the commit is awaited instead, and heartbeats go on while it travels. Storing
    the batch does block that thread; while Postgres is down the session may lapse, the partitions
    move on uncommitted, and the next owner's re-read counts 0 times (docs/exactly-once.md)."""

    def __init__(self, command: Command) -> None:
        self.command = command

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Hand on what we hold for these partitions before someone else owns them.
        offsets = self.command.hand_on(reason="rebalance")
        if offsets:
            try:
                await self.command.consumer.commit_async(offsets)
            except KafkaError:
                # The batch is stored; the next owner re-reads it and the worker's dedupe counts it once.
                logger.warning("offset commit failed on rebalance", exc_info=True)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # They start from the committed offsets; a partition given away keeps a stale expectation
        # that no record consults until it comes back here.
        self.command.offsets.forget([(tp.topic, tp.partition) for tp in assigned])
        logger.info("assigned partitions: %s", sorted(tp.partition for tp in assigned))


class Command(BaseCommand):
    help = "Consume the events topic and hand batches to Celery (commits offsets after hand-off)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=10000,
            help="most events per batch (a request record is never split); batches reach it only when the "
            "bridge or the workers are behind, since --max-wait-ms closes them first at lower rates",
        )
        parser.add_argument(
            "--max-wait-ms",
            type=int,
            default=100,
            help="max age of a partial batch while the workers keep up (see --behind-at)",
        )
        parser.add_argument(
            "--behind-at",
            type=int,
            default=3,
            help="the workers are behind while this many stored batches wait to be counted: a partial batch "
            "is then held past --max-wait-ms (up to 10 times it) and filled up to --batch-size (0: never held)",
        )
        parser.add_argument("--lag-every-s", type=float, default=10.0, help="how often to log consumer lag")
        parser.add_argument("--group", default=settings.KAFKA_CONSUMER_GROUP)
        parser.add_argument("--topic", default=settings.KAFKA_TOPIC)

    def on_sigterm(self, signum: int, frame: Any) -> None:
        logger.info("signal %s: draining and stopping", signum)
        self.stop = True

    def handle(self, *args: Any, **opts: Any) -> None:
        self.stop = False
        self.topic = opts["topic"]
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGINT, self.on_sigterm)
        topic_ensure(topic=self.topic)
        self.buffer = Buffer(max_size=opts["batch_size"], max_wait_s=opts["max_wait_ms"] / 1000)
        self.backlog = Backlog(limit=opts["behind_at"], count=lambda limit: batches_unprocessed_count(limit=limit))
        self.offsets = OffsetCheck()
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=opts["group"],
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=max(settings.KAFKA_SESSION_TIMEOUT_MS // 5, 500),
            max_poll_records=opts["batch_size"],
            # A fetch waits at most this long for records on the broker (kafka-python's default is 500 ms,
            # which some brokers spend in full): a partial batch must still be handed on within max-wait.
            fetch_max_wait_ms=max(min(opts["max_wait_ms"] // 2, 100), 1),
        )
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        heap_settle()
        logger.info("bridge consuming %s as group %s", self.topic, opts["group"])
        self.lag_every_s = opts["lag_every_s"]
        self.next_lag = time.monotonic() + self.lag_every_s
        try:
            while not self.stop:
                self.poll_once()
                if self.buffer.due(behind=self.backlog.behind):
                    self.flush(reason="due")
                self.lag_report_if_due()
        finally:
            self.flush(reason="shutdown")
            self.consumer.close()
            logger.info("bridge stopped")

    def poll_once(self) -> None:
        timeout = int(min(self.buffer.max_wait_s, 0.5) * 1000) or 1
        records = self.consumer.poll(timeout_ms=timeout, max_records=self.buffer.max_size)
        for batch in records.values():
            for record in batch:
                verdict = self.offsets.verdict(record)
                if verdict == "skip":
                    continue
                if verdict == "reread":
                    wanted = self.offsets.wanted(record)
                    logger.warning(
                        "partition %d delivered offset %d before %d: reading it again from %d",
                        record.partition, record.offset, wanted, wanted,
                    )  # fmt: skip
                    self.consumer.seek(TopicPartition(record.topic, record.partition), wanted)
                    break  # the rest of this partition's records come again
                self.buffer.add(record)
                # One poll may bring many request records: hand them on a batch at a time.
                if self.buffer.full():
                    self.flush(reason="due")

    def flush(self, *, reason: str) -> None:
        offsets = self.hand_on(reason=reason)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except KafkaError:
            # The batch is stored; a re-read after a failed commit is deduped downstream.
            logger.warning("offset commit failed after a hand-off", exc_info=True)

    def hand_on(self, *, reason: str) -> dict[TopicPartition, OffsetAndMetadata]:
        """Store the buffer as a batch and queue it; the offsets to commit now (none if the buffer
        was empty, or if Postgres stayed down through a shutdown: the records stay uncommitted)."""
        if not self.buffer.messages:
            return {}
        messages, offsets = self.buffer.messages, self.buffer.next_offsets
        while True:
            try:
                close_old_connections()
                batch_id = hand_off(topic=self.topic, messages=messages, enqueue=celery_enqueue)
                break
            except DatabaseError:
                if self.stop and reason == "shutdown":
                    logger.error("Postgres unavailable at shutdown; %d messages stay uncommitted", len(messages))
                    return {}
                logger.warning("Postgres unavailable; retrying hand-off in 1s", exc_info=True)
                if reason == "due":  # not inside a rebalance callback, where the assignment is changing
                    # The backlog grows while Postgres is down: that is when the lag must keep coming.
                    self.lag_report_if_due()
                time.sleep(1)
        self.buffer.take()
        logger.debug("handed off batch %s (%d records, %s)", batch_id, len(messages), reason)
        return {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}

    def lag_report_if_due(self) -> None:
        if time.monotonic() >= self.next_lag:
            self.log_lag()
            self.next_lag = time.monotonic() + self.lag_every_s

    def log_lag(self) -> None:
        assignment = list(self.consumer.assignment())
        if not assignment:
            return
        try:
            ends = self.consumer.end_offsets(assignment)
        except KafkaError:
            return
        # Messages polled into the buffer are not handed on yet: count from the first of them.
        first = self.buffer.first_offsets
        lag = {
            tp.partition: max(ends[tp] - first.get((tp.topic, tp.partition), self.consumer.position(tp)), 0)
            for tp in assignment
        }
        bridge_lag_record(lag=lag)
        logger.info("consumer lag per partition: %s (total %d)", dict(sorted(lag.items())), sum(lag.values()))
