"""Property-based contract test: the committed OpenAPI schema against the live app.

Schemathesis generates requests for every operation of docs/openapi.yaml, both
valid ones (positive) and ones that break the schema (negative), sends them
over HTTP to a live server backed by the real Postgres, Valkey and Kafka of the
test stack, and checks each answer: no 5xx, the status code, content type,
headers and body are the documented ones, valid input is accepted and invalid
input refused. The seed is fixed (derandomize), so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from events.models import ApiKey
from events.selectors import api_key_cache_clear, event_type_names_cache_clear
from rankings.services import snapshot_take
from tests.conftest import wire
from videos.models import Video

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 40

schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

pytestmark = pytest.mark.django_db(transaction=True)

# Requests sent per operation over the whole module, reported at the end.
SENT: dict[str, dict[str, int]] = {}


class Seed:
    """What the server holds while the contract runs: published and hidden videos, built rankings, a key."""

    def __init__(self, videos: list[Any], hidden: Any, raw_key: str) -> None:
        self.videos = videos
        self.hidden = hidden
        self.raw_key = raw_key
        self.video_ids = [v.id for v in videos]


@pytest.fixture
def seed(
    live_server: Any, make_video: Callable[..., Any], apply_events: Callable[[list[str]], Any], settings: Any
) -> Iterator[Seed]:
    # Hundreds of ingest requests from one key and IP must not be throttled here (tests/api/test_security.py
    # covers the throttles).
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"ingest_key": None, "ingest_ip": None},
    }
    event_type_names_cache_clear()
    api_key_cache_clear()
    videos = [make_video(title=f"Contract video {n}", duration_seconds=60 + n) for n in range(4)]
    hidden = make_video(title="Hidden", status=Video.Status.HIDDEN)
    apply_events([wire(v.id, "like") for v in videos for _ in range(len(videos) - videos.index(v))])
    snapshot_take()
    apply_events([wire(videos[-1].id, "share") for _ in range(5)])
    _, raw_key = ApiKey.objects.create_key(name="contract test")
    yield Seed(videos, hidden, raw_key)
    event_type_names_cache_clear()
    api_key_cache_clear()


def _repair_event(event: Any, seed: Seed, index: int) -> Any:
    """Make a schema-valid event also valid for the data the server holds.

    The schema cannot say which video ids exist, which event types are configured
    (they are edited in the admin) or that ``occurred_at`` must be recent; a
    positive case must meet those too, or refusing it would be right.
    """
    if not isinstance(event, dict):
        return event
    event = dict(event)
    event["video_id"] = seed.video_ids[index % len(seed.video_ids)]
    event["type"] = "watch" if event.get("watch_seconds") is not None else "view"
    if "occurred_at" in event:
        event["occurred_at"] = timezone.now().isoformat()
    return event


def _prepare(case: Any, seed: Seed) -> None:
    if case.meta is None:
        return
    if not case.meta.generation.mode.is_positive:
        return
    if case.operation.path == "/api/v1/events/" and isinstance(case.body, dict):
        if isinstance(case.body.get("events"), list):
            case.body = {**case.body, "events": [_repair_event(e, seed, i) for i, e in enumerate(case.body["events"])]}
        else:
            case.body = _repair_event(case.body, seed, 0)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    total = sum(sum(modes.values()) for modes in SENT.values())
    lines = [f"{op}: {modes}" for op, modes in sorted(SENT.items())]
    print(f"\nschemathesis: {total} requests over {len(SENT)} operations\n" + "\n".join(lines))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_honours_its_schema(case: Any, seed: Seed, live_server: Any, session: requests.Session) -> None:
    _prepare(case, seed)
    headers = {"Authorization": f"Api-Key {seed.raw_key}"} if case.operation.path == "/api/v1/events/" else None
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    counts = SENT.setdefault(case.operation.label, {})
    counts[mode] = counts.get(mode, 0) + 1
    case.call_and_validate(base_url=live_server.url, session=session, headers=headers)
