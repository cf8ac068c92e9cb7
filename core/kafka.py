"""kafka-python plumbing: the producer settings, one producer per process, topic creation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_producer: KafkaProducer | None = None


@dataclass(frozen=True, slots=True)
class Record:
    value: bytes
    key: bytes | None = None
    # Set by a producer that groups its records by partition itself; else chosen from the key.
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class KafkaUnavailable(Exception):
    """The broker did not acknowledge; nothing may be assumed about the unacked records."""


def producer_create(**tuning: Any) -> KafkaProducer:
    """A producer with the delivery guarantees every sender of events keeps; ``tuning`` sets batching."""
    timeout_ms = int(settings.KAFKA_PRODUCE_TIMEOUT_S * 1000)
    options: dict[str, Any] = {
        "linger_ms": 2,
        "batch_size": 256 * 1024,
        "max_block_ms": timeout_ms,
        "request_timeout_ms": timeout_ms,
        "delivery_timeout_ms": timeout_ms + 1000,
        "reconnect_backoff_max_ms": 1000,
        # Without this a dead broker holds each request for the 30 s default.
        "bootstrap_timeout_ms": timeout_ms,
        **tuning,
    }
    # Explicit although they are kafka-python 3.x defaults: a conflicting option
    # (here or in ``tuning``) must fail loudly instead of weakening delivery.
    return KafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all", enable_idempotence=True, **options
    )


def producer() -> KafkaProducer:
    global _producer
    with _lock:
        if _producer is None:
            _producer = producer_create()
        return _producer


def producer_reset() -> None:
    """Drop the producer (after a failure) so the next request starts clean."""
    global _producer
    with _lock:
        old, _producer = _producer, None
    if old is not None:
        try:
            old.close(timeout=0)
        except Exception:  # closing a broken producer may raise anything
            logger.debug("closing producer failed", exc_info=True)


def topic_partitions(*, topic: str) -> list[int]:
    """The topic's partitions (from the producer's metadata, fetched once and kept fresh by it)."""
    try:
        partitions = producer().partitions_for(topic)
    except (KafkaError, TimeoutError, OSError) as exc:
        producer_reset()
        raise KafkaUnavailable(f"Kafka did not give the topic's partitions: {exc.__class__.__name__}") from exc
    if not partitions:
        raise KafkaUnavailable(f"topic {topic} has no partitions")
    return sorted(partitions)


_partition_of_key: dict[bytes, int] = {}
_partitions_cached: tuple[int, ...] = ()
_PARTITION_CACHE_SIZE = 1_000_000


def key_partition(key: bytes, partitions: tuple[int, ...]) -> int:
    """The partition kafka-python's default partitioner (murmur2, as the Java client's) picks for
    ``key`` among the topic's sorted partitions. Cached: kafka-python computes the hash in Python,
    and a request of 500 events asks 500 times."""
    global _partitions_cached
    if partitions != _partitions_cached:  # the topic grew: every answer may change
        _partition_of_key.clear()
        _partitions_cached = partitions
    partition = _partition_of_key.get(key)
    if partition is None:
        if len(_partition_of_key) >= _PARTITION_CACHE_SIZE:
            _partition_of_key.clear()
        partition = _partition_of_key[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
    return partition


def records_produce(*, topic: str, records: Sequence[Record]) -> None:
    """Send records and wait for every acknowledgement (acks=all)."""
    try:
        prod = producer()
        futures = [
            prod.send(topic, key=r.key, value=r.value, partition=r.partition, headers=list(r.headers) or None)
            for r in records
        ]
        prod.flush(timeout=settings.KAFKA_PRODUCE_TIMEOUT_S)
        for future in futures:
            future.get(timeout=settings.KAFKA_PRODUCE_TIMEOUT_S)
    except (KafkaError, TimeoutError, OSError) as exc:
        producer_reset()
        raise KafkaUnavailable(f"Kafka did not acknowledge the records: {exc.__class__.__name__}") from exc


def topic_ensure(*, topic: str | None = None, partitions: int | None = None) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, request_timeout_ms=5000)
    try:
        admin.create_topics([NewTopic(topic or settings.KAFKA_TOPIC, partitions or settings.KAFKA_TOPIC_PARTITIONS, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
