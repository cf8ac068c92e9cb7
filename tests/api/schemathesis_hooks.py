"""Schemathesis hooks of the contract run (tests/api/test_contract_schemathesis.py).

Loaded by the schemathesis command through SCHEMATHESIS_HOOKS, in its own process:
no Django here. The run's published video ids come in CONTRACT_VIDEO_IDS.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import schemathesis
from schemathesis.generation.meta import TestPhase

EVENTS_PATH = "/api/v1/events/"
SUBSCRIPTIONS_PATH = "/api/v1/subscriptions/"
# Where generated subscriptions point: nothing listens there, and nothing is delivered during the run.
HOOK_URL = "http://127.0.0.1:9/hooks/rankings"


def _video_ids() -> list[int]:
    return [int(v) for v in os.environ.get("CONTRACT_VIDEO_IDS", "").split(",") if v]


def _repair_event(event: Any, video_ids: list[int], index: int) -> Any:
    """Make a schema-valid event also valid for the data the server holds.

    The schema cannot say which video ids exist, which event types are configured
    (they are edited in the admin) or that ``occurred_at`` must be recent; a
    positive case must meet those too, or refusing it would be right.
    """
    if not isinstance(event, dict):
        return event
    event = dict(event)
    event["video_id"] = video_ids[index % len(video_ids)]
    event["type"] = "watch" if event.get("watch_seconds") is not None else "view"
    if "occurred_at" in event:
        event["occurred_at"] = datetime.now(UTC).isoformat()
    return event


def _repair_subscription(body: dict[str, Any]) -> dict[str, Any]:
    """Make a schema-valid subscription also valid for the server: the schema cannot say which
    categories exist, that ``n`` goes with the rule, or which strings Django's URL validator takes."""
    body = {**body, "url": HOOK_URL}
    if "category" in body:
        body["category"] = "music"
    if body.get("rule") == "reach_first":
        body.pop("n", None)
    else:
        body.setdefault("n", 10)
    return body


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    # The documented examples are sent exactly as written: they must hold for the demo data
    # (the run creates the videos they name).
    meta = case.meta
    if case.operation.path not in (EVENTS_PATH, SUBSCRIPTIONS_PATH) or meta is None:
        return
    if meta.phase.name == TestPhase.EXAMPLES:
        return
    if not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    if case.operation.path == SUBSCRIPTIONS_PATH:
        if case.method.upper() == "POST":
            case.body = _repair_subscription(case.body)
        return
    video_ids = _video_ids()
    if isinstance(case.body.get("events"), list):
        case.body = {**case.body, "events": [_repair_event(e, video_ids, i) for i, e in enumerate(case.body["events"])]}
    else:
        case.body = _repair_event(case.body, video_ids, 0)
