"""View mixins shared by the API's read endpoints."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from rest_framework.response import Response

from core.api.errors import ServiceUnavailable
from core.redis import REDIS_UNAVAILABLE

logger = logging.getLogger(__name__)


class BackendUnavailableMixin:
    """Turn a lost connection to Redis or Postgres into a 503 in the error shape.

    Without it DRF lets these through and the client sees a bare 500, which
    says "bug" where the truth is "retry later".
    """

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, (*REDIS_UNAVAILABLE, OperationalError, InterfaceError)):
            store = "rankings store (Redis)" if isinstance(exc, REDIS_UNAVAILABLE) else "database"
            logger.warning("%s unavailable: %s", store, exc)
            exc = ServiceUnavailable(f"The {store} is unavailable; retry later.")
        return super().handle_exception(exc)  # type: ignore[misc]
