"""The plain-event shortcut answers exactly what the serializer answers, or defers to it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from core.api.serializers import MAX_ID
from events.serializers import EventInputSerializer, event_attrs_plain

TYPES = {"view", "like", "share", "comment", "watch"}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, MAX_ID, MAX_ID + 1, 2**53, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=140),
    st.sampled_from(
        [
            *sorted(TYPES),
            *["vue", " view", "view ", "", "  ", "u\x00x", "x" * 128, "x" * 129, " " + "x" * 128],
            *["6b0f6c2e-8a3e-4b8e-9a59-2d1f0c7a9e11", "6B0F6C2E8A3E4B8E9A592D1F0C7A9E11"],
            *["{6b0f6c2e-8a3e-4b8e-9a59-2d1f0c7a9e11}", "2026-03-01T11:59:00Z", "2026-03-01T11:59:00"],
            *["2026-03-01T12:30:00+00:00", "2026-02-01T00:00:00Z", "2026"],
        ]
    ),
    st.lists(st.integers(), max_size=2),
)
# Near-valid events: a well-formed event of a random shape, then at most two of its fields
# replaced by any value or dropped, so that both answers, plain and deferred, come up often.
_FIELDS = ["video_id", "type", "event_id", "user_id", "occurred_at", "watch_seconds", "extra"]


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(sorted(TYPES)))
    item: dict[str, Any] = {"video_id": draw(st.integers(min_value=1, max_value=MAX_ID)), "type": event_type}
    if draw(st.booleans()):
        item["event_id"] = str(draw(st.uuids()))
    if draw(st.booleans()):
        item["user_id"] = draw(st.one_of(st.none(), st.text(max_size=130)))
    if draw(st.booleans()):
        item["occurred_at"] = draw(st.sampled_from(["2026-03-01T11:59:00Z", "2026-03-01T11:00:00.250+01:00"]))
    if event_type == "watch":
        item["watch_seconds"] = draw(st.one_of(st.integers(0, 10_000), st.floats(0, 1e6)))
    elif draw(st.booleans()):
        item["watch_seconds"] = None
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=2)):
        if draw(st.booleans()):
            item[name] = draw(_values)
        else:
            item.pop(name, None)
    return item


def through_the_serializer(item: Any) -> dict[str, Any] | None:
    try:
        return dict(EventInputSerializer(context={"event_types": TYPES, "now": NOW}).run_validation(item))
    except serializers.ValidationError:
        return None


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b) and type(a) is type(b)


@settings(max_examples=3000, deadline=None)
@given(item=_events())
def test_the_shortcut_accepts_only_what_the_serializer_accepts_and_returns_the_same(item: dict[str, Any]) -> None:
    serializer = EventInputSerializer(context={"event_types": TYPES, "now": NOW})
    plain = event_attrs_plain(item, serializer=serializer, event_types=TYPES)
    expected = through_the_serializer(item)
    event(f"plain: {plain is not None}; valid: {expected is not None}")  # both kinds must come up
    if plain is None:
        return  # the serializer decides, as before
    assert expected is not None, item
    assert plain.keys() == expected.keys(), item
    assert all(same(plain[k], expected[k]) for k in plain), (item, plain, expected)


def test_the_shortcut_takes_the_events_clients_send() -> None:
    serializer = EventInputSerializer(context={"event_types": TYPES, "now": NOW})
    common: list[dict[str, Any]] = [
        {"video_id": 42, "type": "view", "user_id": "u-981"},
        {"event_id": "6b0f6c2e-8a3e-4b8e-9a59-2d1f0c7a9e11", "video_id": 7, "type": "watch", "watch_seconds": 93},
        {"video_id": 1, "type": "like", "user_id": None, "occurred_at": "2026-03-01T11:59:00.5+01:00"},
    ]
    for item in common:
        assert event_attrs_plain(item, serializer=serializer, event_types=TYPES) == through_the_serializer(item)
    # Not plain: the serializer answers (here with a trimmed type, there with its error).
    odd: list[dict[str, Any]] = [{"video_id": 42, "type": " view"}, {"video_id": "42", "type": "view"}, {"video_id": 0}]
    for item in odd:
        assert event_attrs_plain(item, serializer=serializer, event_types=TYPES) is None
