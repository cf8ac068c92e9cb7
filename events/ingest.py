"""The ingestion side of the event path: validate, then produce to Kafka.

Nothing here writes Redis or Postgres for an event (SPEC section 2); the only
writes are the API key's ``last_used_at`` (at most once a minute) and the key
management commands.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.db.models import Q
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from core import metrics
from core.api.errors import ServiceUnavailable
from core.kafka import KafkaUnavailable
from events.models import ApiKey
from events.producer import events_produce
from events.selectors import VerifiedApiKey, api_keys_matching, event_type_names, videos_published_filter
from events.serializers import EventBatchInputSerializer, EventInputSerializer, event_attrs_plain
from events.wire import WireEvent, epoch_us, uuid_text_of

logger = logging.getLogger(__name__)

NON_FIELD = "non_field_errors"
LAST_USED_INTERVAL_S = 60.0


class EventsNotProduced(ServiceUnavailable):
    """Kafka did not acknowledge; the client should retry with the same event ids."""

    default_detail = "Kafka is unavailable; nothing was accepted. Retry later with the same event_ids."
    default_code = "kafka_unavailable"
    # Sent as Retry-After: the producer reconnects within about a second.
    wait = 1

    def __init__(self, *, event_ids: Sequence[str]) -> None:
        super().__init__()
        self.extra_details = {"event_ids": list(event_ids)}


@dataclass(frozen=True, slots=True)
class IngestResult:
    event_ids: list[str]
    request_id: str

    @property
    def accepted(self) -> int:
        # The events of the request, a repeated event id at each of its positions: the
        # client can match the count against what it sent, without knowing which were repeats.
        return len(self.event_ids)


def _items_of(payload: object) -> tuple[list[Any], bool]:
    """The raw event objects and whether the body was the batch form."""
    if not isinstance(payload, Mapping):
        raise ValidationError({NON_FIELD: ['Expected a JSON object: one event, or {"events": [...]}.']}, code="invalid")
    if "events" not in payload:
        return [payload], False
    envelope = EventBatchInputSerializer(data=payload)
    envelope.is_valid(raise_exception=True)
    return envelope.validated_data["events"], True


def _validate_items(items: Sequence[Any], *, now: datetime) -> tuple[dict[int, dict[str, Any]], dict[int, Any]]:
    """Validate each item on its own so that every bad one is reported, not just the first."""
    event_types = event_type_names()
    serializer = EventInputSerializer(context={"event_types": event_types, "now": now})
    valid: dict[int, dict[str, Any]] = {}
    errors: dict[int, Any] = {}
    for index, item in enumerate(items):
        attrs = event_attrs_plain(item, serializer=serializer, event_types=event_types)
        if attrs is not None:
            valid[index] = attrs
            continue
        try:
            valid[index] = serializer.run_validation(item)
        except serializers.ValidationError as exc:
            errors[index] = exc.detail if isinstance(exc.detail, dict) else {NON_FIELD: exc.detail}
    return valid, errors


def _check_videos(valid: Mapping[int, Mapping[str, Any]], errors: dict[int, Any]) -> None:
    published = videos_published_filter(video_ids={attrs["video_id"] for attrs in valid.values()})
    for index, attrs in valid.items():
        if attrs["video_id"] not in published:
            errors.setdefault(index, {})["video_id"] = [f"Unknown or unpublished video {attrs['video_id']}."]


def _new_ids(count: int, *, at: datetime) -> Iterator[str]:
    """``count`` ids as text for events sent without one, from one read of the OS's random source.

    Time-ordered (UUID version 7, RFC 9562: ``at`` in epoch milliseconds, then 74 random bits), so
    that their dedupe claims go to the growing end of the claims' index rather than to random pages
    of it: a random key's insert reads a page no cache holds once the index outgrows memory.
    """
    prefix = (epoch_us(at) // 1000).to_bytes(6, "big")
    randomness = os.urandom(10 * count)
    return (uuid_text_of(prefix + randomness[i : i + 10], 7) for i in range(0, 10 * count, 10))


def _first_occurrences(events: Sequence[WireEvent]) -> list[WireEvent]:
    """The events to produce: a repeated event id only at its first position.

    A client flushing an offline queue may send one event twice in a request; the
    id counts once, as across requests, and the first occurrence is the one counted.
    Producing the repeat too would be harmless (the worker claims each id once) but
    would put a message on the topic that can never count.
    """
    seen: set[str] = set()
    first: list[WireEvent] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            first.append(event)
    return first


def events_ingest(*, payload: object, api_key: VerifiedApiKey, request_id: str) -> IngestResult:
    """Validate every event of the request, then produce them all to Kafka, or none.

    An event id repeated inside the request is produced once (its first occurrence)
    but listed at each of its positions in ``event_ids``, so the answer lines up with
    the request. Raises ValidationError (details by item index and field) when any
    event is invalid, and EventsNotProduced when Kafka does not acknowledge them.
    """
    items, batch = _items_of(payload)
    now = timezone.now()
    valid, errors = _validate_items(items, now=now)
    _check_videos(valid, errors)
    if errors:
        if batch:
            raise ValidationError({"events": {str(index): errors[index] for index in sorted(errors)}})
        raise ValidationError(errors[0])

    attrs_in_order = [valid[index] for index in range(len(items))]
    new_ids = _new_ids(sum(1 for attrs in attrs_in_order if not attrs.get("event_id")), at=now)
    events = [
        WireEvent(
            event_id=str(attrs["event_id"]) if attrs.get("event_id") else next(new_ids),
            video_id=attrs["video_id"],
            type=attrs["type"],
            occurred_at=attrs.get("occurred_at") or now,
            user_id=attrs.get("user_id") or None,
            watch_seconds=attrs.get("watch_seconds"),
            request_id=request_id,
            accepted_at=now,
        )
        for attrs in attrs_in_order
    ]
    event_ids = [event.event_id for event in events]
    try:
        started = time.perf_counter()
        events_produce(events=_first_occurrences(events), request_id=request_id, accepted_at=now)
        metrics.produce_latency(time.perf_counter() - started)
    except KafkaUnavailable:
        logger.warning(
            "request %s: %d events not produced for key %s; Kafka unavailable",
            request_id,
            len(events),
            api_key.prefix,
            exc_info=True,
        )
        raise EventsNotProduced(event_ids=event_ids) from None
    return IngestResult(event_ids=event_ids, request_id=request_id)


# --- API keys ----------------------------------------------------------------

_used_lock = threading.Lock()
_last_used: dict[str, float] = {}


def api_key_mark_used(*, api_key: VerifiedApiKey) -> bool:
    """Record that the key was used, at most once a minute per key; True when written."""
    now = time.monotonic()
    with _used_lock:
        if now - _last_used.get(api_key.id, float("-inf")) < LAST_USED_INTERVAL_S:
            return False
        _last_used[api_key.id] = now
    stamp = timezone.now()
    # The condition keeps several processes from each writing within the same minute.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=stamp - timedelta(seconds=LAST_USED_INTERVAL_S))
    return ApiKey.objects.filter(Q(pk=api_key.id) & stale).update(last_used_at=stamp) > 0


def api_key_mark_used_reset() -> None:
    with _used_lock:
        _last_used.clear()


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """A new key and its plain text, which is shown once and never stored."""
    api_key, raw_key = ApiKey.objects.create_key(name=name)
    return cast(ApiKey, api_key), raw_key


class ApiKeyNotFound(Exception):
    pass


class ApiKeyAmbiguous(Exception):
    def __init__(self, keys: Sequence[ApiKey]) -> None:
        super().__init__(", ".join(f"{k.prefix} ({k.name})" for k in keys))
        self.keys = list(keys)


def api_key_revoke(*, name_or_prefix: str, revoke_all: bool = False) -> list[ApiKey]:
    """Revoke the key with this prefix, or the key(s) with this name; returns those newly revoked.

    A name shared by several usable keys needs ``revoke_all`` so that a typo
    cannot cut off more clients than intended.
    """
    matches = list(api_keys_matching(name_or_prefix=name_or_prefix))
    if not matches:
        raise ApiKeyNotFound(name_or_prefix)
    usable = [k for k in matches if not k.revoked]
    if len(usable) > 1 and not revoke_all:
        raise ApiKeyAmbiguous(usable)
    for api_key in usable:
        api_key.revoked = True
        api_key.save(update_fields=["revoked"])
    return usable
