"""The event wire format (SPEC section 3), shared by the API and the worker."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

# Namespace for per-user dedupe keys: uuid5(namespace, "user|video|type|bucket").
DEDUPE_NAMESPACE = uuid.UUID("6f1b7c1e-3f5a-4c53-9a43-2b7f0d8e9c11")


class WireError(ValueError):
    """A message that can never be applied; the text is the dead-letter reason.

    ``code`` names the kind of fault from a fixed set (a metric label: the text may
    carry a video id or a type name, which must not mint new series).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class WireEvent:
    event_id: uuid.UUID
    video_id: int
    type: str
    occurred_at: datetime
    user_id: str | None = None
    watch_seconds: float | None = None
    request_id: str | None = None
    # When the API accepted the event (set by the server, never by the client): the worker
    # measures event-to-visible latency from it (docs/observability.md).
    accepted_at: datetime | None = None

    def to_json(self) -> bytes:
        body: dict[str, object] = {
            "event_id": str(self.event_id),
            "video_id": self.video_id,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
        }
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.watch_seconds is not None:
            body["watch_seconds"] = self.watch_seconds
        if self.request_id:
            body["request_id"] = self.request_id
        if self.accepted_at is not None:
            body["accepted_at"] = self.accepted_at.isoformat()
        return json.dumps(body, separators=(",", ":")).encode()

    def dedupe_key(self, window_seconds: int) -> uuid.UUID | None:
        """Key shared by this user's events of this type on this video in one window bucket."""
        if window_seconds <= 0 or not self.user_id:
            return None
        bucket = int(self.occurred_at.timestamp()) // window_seconds
        return uuid.uuid5(DEDUPE_NAMESPACE, f"{self.user_id}|{self.video_id}|{self.type}|{window_seconds}|{bucket}")


def event_units(*, event_type: str, watch_seconds: float | None, duration_seconds: int) -> float:
    """Units an event counts (SPEC section 3): a watch counts its completion ratio, anything else 1."""
    if event_type == "watch":
        return min((watch_seconds or 0.0) / duration_seconds, 1.0) if duration_seconds > 0 else 0.0
    return 1.0


def _aware_datetime(value: object) -> datetime | None:
    """An ISO-8601 date-time with a UTC offset, in UTC, or None; never raises (a message is data)."""
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
        # In UTC, so that a date at the edge of the calendar (year 1 at +05:00) fails here, not in the batch.
        return parsed.astimezone(UTC) if parsed is not None and parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # well-formed but impossible: month 13, year 0
        return None


def wire_parse(raw: str | bytes) -> WireEvent:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WireError("not JSON", "not_json") from None
    if not isinstance(body, dict):
        raise WireError("not a JSON object", "not_object")
    try:
        event_id = uuid.UUID(str(body["event_id"]))
    except (KeyError, ValueError):
        raise WireError("missing or invalid event_id", "invalid_event_id") from None
    video_id = body.get("video_id")
    if not isinstance(video_id, int) or isinstance(video_id, bool) or video_id <= 0:
        raise WireError("missing or invalid video_id", "invalid_video_id")
    event_type = body.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise WireError("missing or invalid type", "invalid_type")
    occurred = _aware_datetime(body.get("occurred_at"))
    if occurred is None:
        raise WireError("missing or invalid occurred_at", "invalid_occurred_at")
    watch = body.get("watch_seconds")
    if watch is not None:
        # json.loads accepts NaN and Infinity, and integers of any size: a count no float,
        # JSON column or score can hold would fail the whole batch, not just this event.
        try:
            watch = float(watch) if isinstance(watch, int | float) and not isinstance(watch, bool) else None
        except OverflowError:
            watch = None
        if watch is None or not math.isfinite(watch) or watch < 0:
            raise WireError("invalid watch_seconds", "invalid_watch_seconds")
    user = body.get("user_id")
    return WireEvent(
        event_id=event_id,
        video_id=video_id,
        type=event_type,
        occurred_at=occurred,
        user_id=str(user) if user not in (None, "") else None,
        watch_seconds=watch,
        request_id=str(body["request_id"]) if body.get("request_id") else None,
        # Only a measurement: a message without it, or with one unreadable, still counts.
        accepted_at=_aware_datetime(body.get("accepted_at")),
    )
