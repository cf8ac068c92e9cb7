"""Events onto the events topic: one request record per partition per request.

A video's events always go to the partition its id hashes to (the one a record keyed by the
video id would get), so they stay in order on one partition whichever shape their records have.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from django.conf import settings

from core.kafka import Record, key_partition, records_produce, topic_partitions
from events.wire import EVENTS_HEADER, WireEvent, record_encode


def events_produce(*, events: Sequence[WireEvent], request_id: str, accepted_at: datetime) -> None:
    """Produce and wait for every acknowledgement; raises core.kafka.KafkaUnavailable."""
    topic = settings.KAFKA_TOPIC
    partitions = tuple(topic_partitions(topic=topic))
    by_partition: dict[int, list[WireEvent]] = defaultdict(list)
    for event in events:
        by_partition[key_partition(str(event.video_id).encode(), partitions)].append(event)
    records_produce(
        topic=topic,
        records=[
            Record(
                value=record_encode(events=group, request_id=request_id, accepted_at=accepted_at),
                partition=partition,
                headers=((EVENTS_HEADER, str(len(group)).encode()),),
            )
            for partition, group in sorted(by_partition.items())
        ],
    )
