"""Events onto the events topic, keyed by video id so one video's events stay ordered."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from core.kafka import records_produce
from events.wire import WireEvent


def events_produce(*, events: Sequence[WireEvent]) -> None:
    """Produce and wait for every acknowledgement; raises core.kafka.KafkaUnavailable."""
    records_produce(topic=settings.KAFKA_TOPIC, records=[(str(e.video_id).encode(), e.to_json()) for e in events])
