"""Serializer rules every endpoint shares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# Ids are Postgres bigints: a larger number must be refused (400) before it reaches the database (500).
MAX_ID = 2**63 - 1

_PLAIN_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


class StrictIntegerField(serializers.IntegerField):
    """An integer written as plain decimal digits, with an optional leading minus.

    DRF's IntegerField also takes "0.0", "+5", " 5 " and non-ASCII digits such as
    Arabic-Indic ones (Python's int() reads them all), so a client could send what the
    schema calls invalid and be answered as if it were valid. Every integer of a query
    string is read with this field. A minus still parses, so "-1" is refused by the
    field's bound, with the message that names it.
    """

    def to_internal_value(self, data: Any) -> int:
        plain = isinstance(data, str) and _PLAIN_INTEGER.fullmatch(data) is not None
        if isinstance(data, bool) or not (plain or isinstance(data, int)):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not declare: a misspelt field must not be dropped silently."""

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, Any] = {}
        if isinstance(data, Mapping):
            errors = {str(name): ["Unknown field."] for name in data if name not in self.fields}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            raise serializers.ValidationError({**detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value
