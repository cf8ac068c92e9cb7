"""The ``kafka`` sink: the history produced to the events topic; the bridge and the workers
count it like client traffic."""

from __future__ import annotations

from django.conf import settings

from core.kafka import producer_create, topic_ensure
from core.progress import Progress
from demo.catalogue import Catalog
from demo.history import EventKind, History, event_wire
from demo.plan import SeedError


def events_produce_kafka(
    *,
    stream: History,
    catalog: Catalog,
    user_ids: list[int],
    kinds: list[EventKind],
    total: int,
    flush_every: int,
    progress: Progress,
) -> int:
    """Produce the stream to the events topic (key = video id, acks=all), flushing every ``flush_every``."""
    topic_ensure()
    # Bulk tuning: bigger batches than the API's, which answers each request as soon as it can.
    producer = producer_create(
        linger_ms=10, batch_size=512 * 1024, max_block_ms=60_000, request_timeout_ms=60_000, delivery_timeout_ms=120_000
    )
    errors: list[BaseException] = []
    sent = 0
    progress("events", 0, total)
    try:
        for _, events in stream:
            for event in events:
                wire = event_wire(event, catalog=catalog, user_ids=user_ids, kinds=kinds)
                future = producer.send(settings.KAFKA_TOPIC, key=str(wire.video_id).encode(), value=wire.to_json())
                future.add_errback(errors.append)
                sent += 1
                if sent % flush_every == 0:
                    producer.flush(timeout=60)
                    if errors:
                        raise SeedError(f"Kafka did not acknowledge events: {errors[0]!r}")
                    progress("events", sent, total)
        producer.flush(timeout=60)
        if errors:
            raise SeedError(f"Kafka did not acknowledge events: {errors[0]!r}")
    finally:
        producer.close(timeout=10)
    progress("events", sent, total)
    return sent
