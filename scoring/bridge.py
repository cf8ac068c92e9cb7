"""Kafka -> Postgres batch -> Celery: the step logic of ``manage.py kafka_bridge``.

Shape of healthchecks' ``sendalerts``: a stop flag set by SIGTERM, small steps,
and on exit the buffer is handed on and offsets committed. Offsets are only
committed after the batch is stored in Postgres (the hand-off point), so a
bridge killed at any moment re-reads at most what was not yet stored; the
worker's dedupe makes such re-reads count once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from django.db import DatabaseError

from events.wire import EVENTS_HEADER
from scoring import tasks
from scoring.ledger import batch_mark_unqueued, batch_store

logger = logging.getLogger("scoring.bridge")


class Record(Protocol):
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None


def record_events(record: Record) -> int:
    """Events in a record: a request record says how many in a header; anything else is one."""
    for name, value in record.headers or ():
        if name == EVENTS_HEADER:
            try:
                return max(int(value), 1)
            except ValueError:
                return 1
    return 1


# A partial batch is held while the workers are behind (Backlog) at most this many times --max-wait-ms:
# the workers may be behind for a reason that new batches would not wait for (many workers, one slow batch).
HOLD_TIMES = 10


@dataclass
class Buffer:
    """Messages polled but not yet handed on, with the offsets to commit after.

    ``max_size`` counts events, not records: a request record carries up to a request's
    worth of events and is never split, so a batch may exceed it by less than one record.
    """

    max_size: int
    max_wait_s: float
    clock: Callable[[], float] = time.monotonic
    messages: list[list[Any]] = field(default_factory=list)
    events: int = 0
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # for the lag: not handed on yet
    first_at: float | None = None

    def add(self, record: Record) -> None:
        if self.first_at is None:
            self.first_at = self.clock()
        raw = record.value.decode("utf-8", errors="replace") if record.value is not None else ""
        self.messages.append([record.partition, record.offset, raw])
        self.events += record_events(record)
        self.next_offsets[(record.topic, record.partition)] = record.offset + 1
        self.first_offsets.setdefault((record.topic, record.partition), record.offset)

    def full(self) -> bool:
        return self.events >= self.max_size

    def expired(self, *, times: float = 1.0) -> bool:
        """Its first message has waited ``times`` times ``max_wait_s``."""
        return self.first_at is not None and self.clock() - self.first_at >= self.max_wait_s * times

    def due(self, *, behind: Callable[[], bool]) -> bool:
        """Full; or expired while the workers keep up; or held ``HOLD_TIMES`` times ``max_wait_s`` whatever they do.

        ``behind`` is asked only for an expired batch that is not full.
        """
        if self.full():
            return True
        if not self.expired():
            return False
        return self.expired(times=HOLD_TIMES) or not behind()

    def take(self) -> tuple[list[list[Any]], dict[tuple[str, int], int]]:
        messages, offsets = self.messages, self.next_offsets
        self.messages, self.next_offsets, self.first_offsets, self.first_at = [], {}, {}, None
        self.events = 0
        return messages, offsets


@dataclass
class Backlog:
    """Whether the workers are behind: ``limit`` or more stored batches wait to be counted.

    A batch that has waited ``--max-wait-ms`` is handed on early so that its events are counted
    soon; while the workers are behind, it would only wait in the queue instead, and the bridge
    keeps filling it (up to the batch size) so that each batch carries more events for the
    same fixed cost. ``count(limit)`` counts the waiting batches up to ``limit``; it is asked at
    most once per ``every_s``. A limit of 0 never holds a batch.
    """

    limit: int
    count: Callable[[int], int]
    every_s: float = 0.02
    clock: Callable[[], float] = time.monotonic
    checked_at: float = float("-inf")
    behind_then: bool = False

    def behind(self) -> bool:
        if self.limit <= 0:
            return False
        now = self.clock()
        if now - self.checked_at >= self.every_s:
            try:
                self.behind_then = self.count(self.limit) >= self.limit
            except DatabaseError:  # the hand-off retries until Postgres answers; nothing to hold for
                self.behind_then = False
            self.checked_at = now
        return self.behind_then


@dataclass
class OffsetCheck:
    """The offset each partition should deliver next, so that a record the client skips is read again.

    The bridge commits past every record it takes, so a record the consumer never returns would be
    lost without a trace. kafka-python 3.0.12 did skip one: in a benchmark run, partition 1 delivered
    offsets 848 and 850 in one poll, 849 never, and the broker still held it (docs/exactly-once.md).
    The events topic is neither compacted nor transactional, so its offsets are consecutive: a
    record past the expected offset means reading that partition again from the expected one. If
    the same gap comes back, the broker has nothing there and the record is taken.
    """

    expected: dict[tuple[str, int], int] = field(default_factory=dict)
    reread: dict[tuple[str, int], int] = field(default_factory=dict)  # gaps read again once: the offset wanted

    def verdict(self, record: Record) -> Literal["take", "skip", "reread"]:
        """'take' the record, 'skip' it (taken before a seek back), or 'reread' from ``wanted(record)``."""
        key = (record.topic, record.partition)
        want = self.expected.get(key)
        if want is None or record.offset == want or (record.offset > want and self.reread.get(key) == want):
            self.expected[key] = record.offset + 1
            self.reread.pop(key, None)
            return "take"
        if record.offset < want:
            return "skip"
        self.reread[key] = want
        return "reread"

    def wanted(self, record: Record) -> int:
        return self.expected[(record.topic, record.partition)]

    def forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Partitions just assigned: they start wherever the group's committed offsets say."""
        for key in partitions:
            self.expected.pop(key, None)
            self.reread.pop(key, None)


def hand_off(*, topic: str, messages: list[list[Any]], enqueue: Callable[[str], None]) -> str:
    """Store the batch (durable from here on) and queue its processing.

    If queueing fails the batch is still safe: the repair task re-queues
    stored batches that nobody processed.
    """
    batch = batch_store(topic=topic, messages=messages)
    try:
        enqueue(str(batch.id))
    except Exception:  # broker down: the sweeper picks the stored batch up later
        logger.warning("could not queue batch %s; the repair task will", batch.id, exc_info=True)
        try:
            batch_mark_unqueued(batch_id=str(batch.id))  # so it need not wait for the lease
        except DatabaseError:
            logger.warning("could not mark batch %s unqueued; the sweeper queues it after the lease", batch.id)
    return str(batch.id)


def celery_enqueue(batch_id: str) -> None:
    tasks.batch_process.delay(batch_id)
