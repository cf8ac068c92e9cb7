"""Input and output shapes of the ingestion API."""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.api.serializers import MAX_ID, StrictSerializer

MAX_EVENTS_PER_REQUEST = 1000


class StrictFloatField(serializers.FloatField):
    """A JSON number; DRF would also take true/false as 1/0."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class EventInputSerializer(StrictSerializer):
    """One engagement event (SPEC section 3).

    Expects ``event_types`` (a set of names) and ``now`` (aware datetime) in its context.
    """

    event_id = serializers.UUIDField(
        required=False,
        help_text="Client-chosen id; the same id sent again, in another request or in the same one, is counted "
        "once. Assigned by the server when absent.",
    )
    video_id = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="Id of a published video.")
    type = serializers.CharField(max_length=32, help_text="Name of a known event type, e.g. view, like, watch.")
    user_id = serializers.CharField(
        max_length=128,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Opaque id of the viewer; enables per-user dedupe (a view counts once per 30 min).",
    )
    occurred_at = serializers.DateTimeField(
        required=False,
        default_timezone=UTC,
        help_text="ISO-8601; without an offset it is read as UTC. Defaults to the time of receipt. "
        "At most 5 minutes in the future and 7 days in the past.",
    )
    watch_seconds = StrictFloatField(
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Seconds watched; required for type 'watch', not allowed for other types.",
    )

    def validate_type(self, value: str) -> str:
        known = self.context["event_types"]
        if value not in known:
            raise serializers.ValidationError(f"Unknown event type '{value}'. Known types: {', '.join(sorted(known))}.")
        return value

    def validate_occurred_at(self, value: datetime) -> datetime:
        now: datetime = self.context["now"]
        if value > now + timedelta(seconds=settings.RANKING_MAX_FUTURE_S):
            raise serializers.ValidationError(
                f"More than {settings.RANKING_MAX_FUTURE_S} seconds in the future; check the client clock."
            )
        if value < now - timedelta(seconds=settings.RANKING_MAX_AGE_S):
            raise serializers.ValidationError(
                f"Older than {settings.RANKING_MAX_AGE_S // 86400} days; such late events are no longer counted."
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        watch = attrs.get("watch_seconds")
        if attrs["type"] == "watch" and watch is None:
            raise serializers.ValidationError({"watch_seconds": ["Required for events of type 'watch'."]})
        if attrs["type"] != "watch" and watch is not None:
            raise serializers.ValidationError(
                {"watch_seconds": [f"Only allowed for events of type 'watch', not '{attrs['type']}'."]}
            )
        return attrs


_EVENT_FIELDS = frozenset(("event_id", "video_id", "type", "user_id", "occurred_at", "watch_seconds"))
_USER_ID_MAX = 128
_WATCH_MAX = 2**53  # integers above this are not exact floats: left to DRF's own rules


def event_attrs_plain(item: object, *, serializer: EventInputSerializer, event_types: Collection[str]) -> Any:
    """``serializer.run_validation(item)`` for the plain events nearly every request holds, or None.

    It accepts only input on which each of EventInputSerializer's fields is the identity (or a
    plain conversion: a canonical uuid text to its UUID, an int to a float) and returns what the
    serializer would; anything else, valid or not, gets None and goes through the serializer,
    which gives the same answer and the error bodies. Walking DRF's fields costs about 40 µs an
    event; this, about 2.
    """
    if type(item) is not dict or not _EVENT_FIELDS.issuperset(item):
        return None
    video_id = item.get("video_id")
    if type(video_id) is not int or not 1 <= video_id <= MAX_ID:
        return None
    event_type = item.get("type")
    if type(event_type) is not str or event_type not in event_types:
        return None
    attrs: dict[str, Any] = {"video_id": video_id, "type": event_type}
    if "event_id" in item:
        if type(item["event_id"]) is not str:
            return None
        try:
            attrs["event_id"] = uuid.UUID(hex=item["event_id"])
        except ValueError:
            return None
    if "user_id" in item:
        user = item["user_id"]
        if user is not None and (
            type(user) is not str or len(user) > _USER_ID_MAX or user.strip() != user or "\x00" in user
        ):
            return None
        attrs["user_id"] = user
    watch = item.get("watch_seconds")
    if watch is not None:
        if type(watch) not in (int, float) or not (0 <= watch <= _WATCH_MAX) or not math.isfinite(watch):
            return None
        watch = float(watch)
    if "watch_seconds" in item:
        attrs["watch_seconds"] = watch
    if (event_type == "watch") != (watch is not None):
        return None
    if "occurred_at" in item:
        try:
            field = serializer.fields["occurred_at"]
            attrs["occurred_at"] = serializer.validate_occurred_at(field.run_validation(item["occurred_at"]))
        except serializers.ValidationError:
            return None
    return attrs


class EventListField(serializers.ListField):
    """The ``events`` array, checked for shape and size only.

    Items are validated one by one by the ingest service, so that every bad
    item is reported and the video check covers the whole batch in one lookup.
    The size is checked before anything else so an oversized batch costs nothing.
    """

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        items = data
        if not items:
            self.fail("empty")
        if self.max_length is not None and len(items) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return items


class EventBatchInputSerializer(StrictSerializer):
    events = EventListField(
        child=EventInputSerializer(),
        allow_empty=False,
        max_length=MAX_EVENTS_PER_REQUEST,
        error_messages={
            "max_length": "At most {max_length} events per request; split the batch.",
            "empty": "Send at least one event.",
        },
    )


class IngestAcceptedOutputSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(
        help_text="Number of events in the request (the length of `event_ids`), a repeated `event_id` "
        "included at each of its positions although it is counted once."
    )
    event_ids = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="One id per event of the request, in request order, including server-assigned ones; "
        "a repeated `event_id` appears at each of its positions.",
    )
