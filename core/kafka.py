"""kafka-python plumbing: the producer settings, one producer per process, topic creation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_producer: KafkaProducer | None = None

Record = tuple[bytes, bytes]  # (key, value)


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


def records_produce(*, topic: str, records: Sequence[Record]) -> None:
    """Send keyed records and wait for every acknowledgement (acks=all)."""
    try:
        prod = producer()
        futures = [prod.send(topic, key=key, value=value) for key, value in records]
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
