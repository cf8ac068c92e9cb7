"""Serializer rules every endpoint shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# Ids are Postgres bigints: a larger number must be refused (400) before it reaches the database (500).
MAX_ID = 2**63 - 1


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
