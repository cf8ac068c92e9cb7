"""kafka-python plumbing: one producer per process, topic creation, reachability."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from django.conf import settings
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from events.wire import WireEvent

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_producer: KafkaProducer | None = None


class KafkaUnavailable(Exception):
    """The broker did not acknowledge; nothing may be assumed about the unacked events."""


def producer() -> KafkaProducer:
    global _producer
    with _lock:
        if _producer is None:
            _producer = KafkaProducer(
                bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                # Explicit although they are kafka-python 3.x defaults: a conflicting
                # option elsewhere must fail loudly instead of weakening delivery.
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                batch_size=256 * 1024,
                max_block_ms=int(settings.KAFKA_PRODUCE_TIMEOUT_S * 1000),
                request_timeout_ms=int(settings.KAFKA_PRODUCE_TIMEOUT_S * 1000),
                delivery_timeout_ms=int(settings.KAFKA_PRODUCE_TIMEOUT_S * 1000) + 1000,
                reconnect_backoff_max_ms=1000,
                # Without this a dead broker holds each request for the 30 s default.
                bootstrap_timeout_ms=int(settings.KAFKA_PRODUCE_TIMEOUT_S * 1000),
            )
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


def events_produce(*, events: Sequence[WireEvent]) -> None:
    """Send events keyed by video id and wait for every acknowledgement (acks=all)."""
    try:
        prod = producer()
        futures = [prod.send(settings.KAFKA_TOPIC, key=str(e.video_id).encode(), value=e.to_json()) for e in events]
        prod.flush(timeout=settings.KAFKA_PRODUCE_TIMEOUT_S)
        for future in futures:
            future.get(timeout=settings.KAFKA_PRODUCE_TIMEOUT_S)
    except (KafkaError, TimeoutError, OSError) as exc:
        producer_reset()
        raise KafkaUnavailable(f"Kafka did not acknowledge the events: {exc.__class__.__name__}") from exc


def topic_ensure(*, topic: str | None = None, partitions: int | None = None) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, request_timeout_ms=5000)
    try:
        admin.create_topics([NewTopic(topic or settings.KAFKA_TOPIC, partitions or settings.KAFKA_TOPIC_PARTITIONS, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
