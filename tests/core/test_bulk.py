"""Array parameters reach Postgres exactly as Python holds them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection

from core.bulk import array_param

pytestmark = pytest.mark.django_db


def round_trip(sql_type: str, values: list[object]) -> list[object]:
    with connection.cursor() as cur:
        cur.execute(f"SELECT unnest(%s::{sql_type}[])", [array_param(values)])
        return [row[0] for row in cur.fetchall()]


def test_floats_ints_uuids_and_timestamps_come_back_identical() -> None:
    floats = [0.1, 1 / 3, 5e-324, 1e-300, 1.7976931348623157e308, -0.0, 2.0**53 + 2, 123456.789e-7]
    assert round_trip("float8", [repr(f) for f in floats]) == floats  # every bit: the counters add them
    assert round_trip("bigint", [0, -1, 2**63 - 1]) == [0, -1, 2**63 - 1]
    keys = [uuid.uuid4() for _ in range(3)]
    assert round_trip("uuid", [str(k) for k in keys]) == keys
    moments = [
        datetime(2026, 11, 29, 22, 0, tzinfo=UTC),
        datetime(2026, 11, 29, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, 15, 250, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ]
    assert round_trip("timestamptz", [m.isoformat() for m in moments]) == moments
    assert round_trip("bigint", []) == []
