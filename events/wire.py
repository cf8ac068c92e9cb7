"""The event wire format (SPEC section 3), shared by the API and the worker.

Two record shapes share the topic. A *request record* (what the API produces) holds the
events of one request that fall on one partition, their shared fields once:

    {"v": 2, "request_id": "...", "accepted_at": <epoch ms>,
     "events": [[event_id, video_id, type, occurred_at (epoch µs), user_id or null,
                 watch_seconds or null], ...]}

and carries the header ``events`` (its event count, so the bridge sizes batches without
decoding). A *single-event record* is the object of ``WireEvent.to_json``: older producers,
the seed's Kafka sink, and dead letters (each keeps one event in this shape, so a replay
needs no envelope). The worker reads both.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

RECORD_VERSION = 2
EVENTS_HEADER = "events"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_MISSING = object()  # a single-event record without an event_id

# Namespace for per-user dedupe keys: uuid5(namespace, "user|video|type|bucket").
DEDUPE_NAMESPACE = uuid.UUID("6f1b7c1e-3f5a-4c53-9a43-2b7f0d8e9c11")
# What str(uuid.UUID(...)) prints: the only form the API writes.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
    # Canonical text (``uuid_text``): ids travel as text from the API to the dedupe claim, and a
    # UUID object made and printed again at each end cost about 2 µs an event (docs/benchmarks.md).
    event_id: str
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
            "event_id": self.event_id,
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

    def dedupe_key(self, window_seconds: int) -> str | None:
        """Key shared by this user's events of this type on this video in one window bucket:
        ``uuid5(DEDUPE_NAMESPACE, "user|video|type|window|bucket")`` as canonical text."""
        if window_seconds <= 0 or not self.user_id:
            return None
        bucket = int(self.occurred_at.timestamp()) // window_seconds
        return uuid5_text(f"{self.user_id}|{self.video_id}|{self.type}|{window_seconds}|{bucket}")


def uuid5_text(name: str, namespace: uuid.UUID = DEDUPE_NAMESPACE) -> str:
    """``str(uuid.uuid5(namespace, name))`` without the UUID object: the worker makes one per event."""
    return uuid_text_of(hashlib.sha1(namespace.bytes + name.encode("utf-8"), usedforsecurity=False).digest(), 5)


def uuid_text_of(raw: bytes, version: int) -> str:
    """The canonical text of the RFC 4122 id of ``version`` made of ``raw``'s first 16 bytes."""
    digest = bytearray(raw[:16])
    digest[6] = (digest[6] & 0x0F) | (version << 4)
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid_text(value: object) -> str:
    """``str(uuid.UUID(str(value)))``, taking canonical text as it is; raises ValueError."""
    if type(value) is str and _CANONICAL_UUID.fullmatch(value):
        return value
    return str(uuid.UUID(str(value)))


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp rounds some of them)."""
    return (moment - _EPOCH) // _MICRO


def record_encode(*, events: Sequence[WireEvent], request_id: str, accepted_at: datetime) -> bytes:
    """One request record: events of one request, for one partition."""
    return json.dumps(
        {
            "v": RECORD_VERSION,
            "request_id": request_id,
            "accepted_at": epoch_us(accepted_at) // 1000,
            "events": [
                [e.event_id, e.video_id, e.type, epoch_us(e.occurred_at), e.user_id, e.watch_seconds] for e in events
            ],
        },
        separators=(",", ":"),
    ).encode()


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


# An event of a record, or why it can never count, with the text a dead letter keeps of it:
# None for a request record's valid event, whose text is its ``to_json()`` (made only if it dies).
Parsed = tuple[str | None, WireEvent | WireError]


def record_parse(raw: str | bytes) -> list[Parsed]:
    """Every event of a record of either shape. Never raises: a record that is not even an
    envelope is one dead entry holding the whole text."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return [(text, WireError("not JSON", "not_json"))]
    if not (isinstance(body, dict) and body.get("v") == RECORD_VERSION):
        try:
            return [(text, _event_of(body))]
        except WireError as exc:
            return [(text, exc)]
    items = body.get("events")
    if not isinstance(items, list):
        return [(text, WireError("request record without an events list", "not_object"))]
    request_id, accepted = body.get("request_id"), _epoch_ms_datetime(body.get("accepted_at"))
    parsed: list[Parsed] = []
    for item in items:
        try:
            if type(item) is not list or len(item) != 6:
                raise WireError("a request record's event is not a list of 6 fields", "not_object")
            event_id, video_id, event_type, occurred_us, user_id, watch = item
            event = _event_checked(
                event_id, video_id, event_type, _epoch_us_datetime(occurred_us), user_id, watch, request_id, accepted
            )
        except WireError as exc:
            parsed.append((json.dumps(item, separators=(",", ":")), exc))
        else:
            parsed.append((None, event))
    return parsed


def dead_text(parsed: Parsed) -> str:
    raw, event = parsed
    if raw is not None or isinstance(event, WireError):
        return raw or ""
    return event.to_json().decode()


def _epoch_us_datetime(value: object) -> datetime:
    """A request record's occurred_at (epoch µs) as a datetime; raises WireError."""
    if type(value) is not int:
        raise WireError("missing or invalid occurred_at", "invalid_occurred_at")
    try:
        return _EPOCH + value * _MICRO
    except OverflowError:
        raise WireError("missing or invalid occurred_at", "invalid_occurred_at") from None


def _epoch_ms_datetime(value: object) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return _EPOCH + value * 1000 * _MICRO
    except OverflowError:
        return None


def wire_parse(raw: str | bytes) -> WireEvent:
    """A single-event record; raises WireError."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WireError("not JSON", "not_json") from None
    return _event_of(body)


def _event_of(body: object) -> WireEvent:
    """A single-event record's object, checked; raises WireError."""
    if not isinstance(body, dict):
        raise WireError("not a JSON object", "not_object")
    occurred = body.get("occurred_at")
    return _event_checked(
        body.get("event_id", _MISSING),
        body.get("video_id"),
        body.get("type"),
        _aware_datetime(occurred) if not isinstance(occurred, datetime) else occurred,
        body.get("user_id"),
        body.get("watch_seconds"),
        body.get("request_id"),
        _aware_datetime(body.get("accepted_at")),
    )


def _event_checked(
    event_id: object,
    video_id: object,
    event_type: object,
    occurred: datetime | None,
    user: object,
    watch: object,
    request_id: object,
    accepted: object,
) -> WireEvent:
    """The checks of an event, whichever record shape carried its fields; raises WireError."""
    try:
        if event_id is _MISSING:
            raise ValueError
        event_id = uuid_text(event_id)
    except ValueError:
        raise WireError("missing or invalid event_id", "invalid_event_id") from None
    if type(video_id) is not int or video_id <= 0:
        raise WireError("missing or invalid video_id", "invalid_video_id")
    if type(event_type) is not str or not event_type:
        raise WireError("missing or invalid type", "invalid_type")
    if occurred is None:
        raise WireError("missing or invalid occurred_at", "invalid_occurred_at")
    if watch is not None:
        # json.loads accepts NaN and Infinity, and integers of any size: a count no float,
        # JSON column or score can hold would fail the whole batch, not just this event.
        try:
            watch = float(watch) if isinstance(watch, int | float) and not isinstance(watch, bool) else None
        except OverflowError:
            watch = None
        if watch is None or not math.isfinite(watch) or watch < 0:
            raise WireError("invalid watch_seconds", "invalid_watch_seconds")
    return WireEvent(
        event_id=event_id,
        video_id=video_id,
        type=event_type,
        occurred_at=occurred,
        user_id=str(user) if user not in (None, "") else None,
        watch_seconds=watch,
        request_id=str(request_id) if request_id else None,
        # Only a measurement: a message without it, or with one unreadable, still counts.
        accepted_at=accepted if isinstance(accepted, datetime) else None,
    )
