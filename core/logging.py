"""Structured logs: one JSON object per line, with the current request id.

Every process (web, bridge, Celery worker, beat) logs through this formatter,
so one ``grep <request id>`` or a log shipper's field filter follows an event
from the API call that accepted it to the batch that counted it.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Set by core.middleware for the duration of a request; a ContextVar
# rather than a thread-local so that it also holds under ASGI or in threads
# started with contextvars.copy_context().
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"})


def _jsonable(value: Any) -> Any:
    # A log call must never fail because an extra is not JSON: fall back to its text.
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", ...extras}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in body:
                body[key] = _jsonable(value)
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(body, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """Human-readable lines for a terminal (LOG_FORMAT=plain), still carrying the request id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # A copy: other handlers may format the same record and must not see the placeholder.
        copy = logging.makeLogRecord(vars(record))
        copy.request_id = getattr(record, "request_id", None) or request_id_var.get() or "-"
        return super().format(copy)
