"""Request records: what the API produces, and how the worker reads them back."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import pytest

from events.wire import (
    DEDUPE_NAMESPACE,
    WireError,
    WireEvent,
    dead_text,
    epoch_us,
    record_encode,
    record_parse,
    uuid_text,
    uuid_text_of,
    wire_parse,
)

ACCEPTED = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def wire_event(video_id: int, **changes: object) -> WireEvent:
    fields: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "video_id": video_id,
        "type": "view",
        "occurred_at": datetime(2026, 3, 1, 11, 59, 59, 999999, tzinfo=UTC),
        "user_id": "u-1",
        "request_id": "req-1",
        "accepted_at": ACCEPTED,
        **changes,
    }
    return WireEvent(**fields)  # type: ignore[arg-type]


def test_a_request_record_reads_back_as_the_events_that_were_sent() -> None:
    sent = [wire_event(1), wire_event(2, type="watch", watch_seconds=12.5, user_id=None), wire_event(3, user_id="")]
    parsed = record_parse(record_encode(events=sent, request_id="req-1", accepted_at=ACCEPTED))
    got = [event for _, event in parsed]
    # The microsecond of occurred_at survives (it decides the minute and the dedupe bucket);
    # an empty user id is no user, as in a single-event record.
    assert got == [sent[0], sent[1], wire_event(3, event_id=sent[2].event_id, user_id=None)]


def test_a_dead_event_of_a_request_record_keeps_a_single_event_text_that_reads_back() -> None:
    good = wire_event(7)
    raw = record_encode(events=[good], request_id="req-1", accepted_at=ACCEPTED)
    body = json.loads(raw)
    body["events"].append(["not-a-uuid", 7, "view", epoch_us(ACCEPTED), None, None])
    body["events"].append(["6b0f6c2e-8a3e-4b8e-9a59-2d1f0c7a9e11", 7, "view", "yesterday", None, None])
    parsed = record_parse(json.dumps(body))
    assert [type(event) for _, event in parsed] == [WireEvent, WireError, WireError]
    assert [event.code for _, event in parsed[1:]] == ["invalid_event_id", "invalid_occurred_at"]  # type: ignore[union-attr]
    # A valid event that dies later (its video was deleted) is kept as a single-event record:
    # a replay reads it as it was, its request id and acceptance time included.
    assert wire_parse(dead_text(parsed[0])) == good
    assert json.loads(dead_text(parsed[1]))[0] == "not-a-uuid"


def test_single_event_records_and_broken_envelopes_still_read() -> None:
    single = wire_event(5)
    assert record_parse(single.to_json()) == [(single.to_json().decode(), single)]
    for raw in (b"\xff not json", "[1, 2]", '{"v": 2, "events": "nope"}'):
        [(text, event)] = record_parse(raw)
        assert isinstance(event, WireError) and text


def test_the_dedupe_key_is_the_uuid5_of_user_video_type_window_and_bucket() -> None:
    # Claims already stored hold these keys: the text must never change.
    for user in ("u-1", "fan-\U0001f600", "x" * 128):
        event = wire_event(42, user_id=user, type="like")
        bucket = int(event.occurred_at.timestamp()) // 1800
        expected = uuid.uuid5(DEDUPE_NAMESPACE, f"{user}|42|like|1800|{bucket}")
        assert event.dedupe_key(1800) == str(expected)
    assert wire_event(42, user_id=None).dedupe_key(1800) is None
    assert wire_event(42).dedupe_key(0) is None


def test_an_event_id_reads_as_its_one_canonical_text_whatever_form_it_came_in() -> None:
    """Ids travel as text; the dedupe claim holds the canonical form, so one id sent in two spellings
    (an older producer, a replayed dead letter) is still one id."""
    for _ in range(50):
        u = uuid.uuid4()
        canonical = str(u)
        for form in (canonical, canonical.upper(), u.hex, f"{{{u}}}", f"urn:uuid:{u}"):
            assert uuid_text(form) == canonical
        event = wire_event(9, event_id=canonical)
        shouted = json.loads(event.to_json())
        shouted["event_id"] = canonical.upper()
        assert wire_parse(json.dumps(shouted)) == event
    for bad in ("not-a-uuid", "", None, 12, str(uuid.uuid4())[:-1], str(uuid.uuid4()) + "0"):
        with pytest.raises(ValueError):
            uuid_text(bad)


def test_ids_made_as_text_are_the_ids_the_uuid_module_makes() -> None:
    for _ in range(200):
        raw = os.urandom(16)
        assert uuid_text_of(raw, 4) == str(uuid.UUID(bytes=raw, version=4))
        # Version 7 (time-ordered), which this Python's uuid module cannot make: raw's bytes but
        # for the version and variant bits, so its leading 48 bits (the time) keep their order.
        made = uuid.UUID(uuid_text_of(raw, 7))
        kept = ((1 << 128) - 1) ^ (0xF << 76 | 0x3 << 62)  # every bit but the version's and the variant's
        assert (made.version, made.variant) == (7, uuid.RFC_4122) and made.int & kept == int.from_bytes(raw) & kept
