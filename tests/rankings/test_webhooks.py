"""Webhooks on rank changes, against the real servers: subscriptions through the HTTP API with
API keys, the evaluator's rules, deliveries POSTed to a real HTTP receiver on loopback (signed,
retried with backoff, recorded per attempt), the SSRF refusals, and end to end through a
real Celery worker and beat within the 5 seconds the API promises."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core import outbound
from events.models import ApiKey
from events.selectors import api_key_cache_clear
from rankings import services
from rankings.models import WatchedList, WebhookAttempt, WebhookDelivery, WebhookSubscription
from tests.conftest import wire
from tests.factories import CategoryFactory
from tests.http import error_of
from tests.processes import beat, running, wait_for, worker

URL = "/api/v1/subscriptions/"
Apply = Callable[[list[str]], Any]
MakeVideo = Callable[..., Any]


def likes(video_id: int, n: int) -> list[str]:
    return [wire(video_id, "like") for _ in range(n)]


# --- a real HTTP receiver on loopback ----------------------------------------------------------


@dataclass
class Received:
    at: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status of ``statuses`` (then 200), after ``delay_s``."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(Received(time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(state.delay_s)
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/rankings?team=growth"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def verify(secret: str, request: Received) -> dict[str, Any]:
    """What a receiver does: check the signature on the raw bytes, then parse."""
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-signature"], expected)
    body = json.loads(request.body)
    assert request.headers["idempotency-key"] == body["idempotency_key"]
    assert request.headers["content-type"] == "application/json"
    return dict(body)


# --- keys and subscriptions --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_key_cache() -> Iterator[None]:
    api_key_cache_clear()
    yield
    api_key_cache_clear()


def key_client(name: str = "client app") -> tuple[APIClient, ApiKey]:
    api_key, raw = ApiKey.objects.create_key(name=name)
    assert isinstance(api_key, ApiKey)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client, api_key


def subscribe(client: APIClient, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "window": "day", "rule": "enter_top", **fields}
    if body["rule"] != "reach_first":
        body.setdefault("n", 3)
    response = client.post(URL, {k: v for k, v in body.items() if v is not None}, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


@pytest.mark.django_db
def test_subscribe_list_and_delete_are_per_api_key(category: Any) -> None:
    mine, my_key = key_client("mine")
    theirs, _ = key_client("theirs")
    created = subscribe(mine, "https://hooks.example.com/rankings", category="music", rule="leave_top", n=10)
    assert set(created) == {"id", "url", "window", "category", "rule", "n", "created_at", "secret"}
    assert (created["category"], created["rule"], created["n"]) == ("music", "leave_top", 10)
    assert len(created["secret"]) == 64
    stored = WebhookSubscription.objects.get(id=created["id"])
    assert stored.secret == created["secret"] and stored.api_key_id == my_key.id
    first = subscribe(mine, "https://hooks.example.com/first", rule="reach_first", n=None)
    assert first["n"] == 1 and first["category"] is None

    listed = mine.get(URL).json()
    assert listed["count"] == 2
    assert [s["id"] for s in listed["results"]] == [created["id"], first["id"]]
    assert all("secret" not in s for s in listed["results"])  # shown once, never again
    assert {k: v for k, v in created.items() if k != "secret"} == listed["results"][0]
    assert theirs.get(URL).json()["count"] == 0

    assert error_of(theirs.delete(f"{URL}{created['id']}/"), 404)["details"] == {"subscription_id": created["id"]}
    assert mine.delete(f"{URL}{created['id']}/").status_code == 204
    assert error_of(mine.delete(f"{URL}{created['id']}/"), 404)["code"] == "not_found"
    assert error_of(mine.delete(f"{URL}{2**63}/"), 404)["code"] == "not_found"
    assert [s["id"] for s in mine.get(URL).json()["results"]] == [first["id"]]


@pytest.mark.django_db
def test_subscriptions_need_a_usable_api_key(category: Any) -> None:
    body = {"url": "https://hooks.example.com/x", "window": "day", "rule": "enter_top", "n": 3}
    anonymous = APIClient()
    assert error_of(anonymous.post(URL, body, format="json"), 401)["code"] == "not_authenticated"
    assert error_of(anonymous.get(URL), 401)["code"] == "not_authenticated"
    assert error_of(anonymous.delete(f"{URL}1/"), 401)["code"] == "not_authenticated"
    wrong = APIClient()
    wrong.credentials(HTTP_X_API_KEY="abcdefgh.not-a-real-key")
    assert error_of(wrong.get(URL), 401)["code"] == "authentication_failed"
    client, api_key = key_client()
    api_key.revoked = True
    api_key.save()
    api_key_cache_clear()
    assert error_of(client.post(URL, body, format="json"), 403)["code"] == "api_key_revoked"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"window": "month"}, "window"),
        ({"rule": "climb"}, "rule"),
        ({"n": None}, "n"),  # enter_top needs n
        ({"n": 0}, "n"),
        ({"n": 101}, "n"),
        ({"rule": "reach_first", "n": 5}, "n"),
        ({"category": "jazz"}, "category"),
        ({"category": "not a slug"}, "category"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_subscriptions_are_a_400_naming_the_field(category: Any, fields: dict[str, Any], bad: str) -> None:
    client, _ = key_client()
    body = {"url": "https://hooks.example.com/x", "window": "day", "rule": "enter_top", "n": 3, **fields}
    body = {k: v for k, v in body.items() if v is not None}
    error = error_of(client.post(URL, body, format="json"), 400)
    assert error["code"] == "invalid" and set(error["details"]) == {bad}, error


@pytest.mark.django_db
def test_subscriptions_per_key_are_capped(category: Any, settings: Any) -> None:
    settings.WEBHOOKS_MAX_PER_KEY = 2
    client, _ = key_client()
    for _ in range(2):
        subscribe(client, "https://hooks.example.com/x")
    body = {"url": "https://h.example.com/", "window": "day", "rule": "reach_first"}
    error = error_of(client.post(URL, body, format="json"), 409)
    assert error["code"] == "subscription_limit" and "At most 2 subscriptions" in error["message"]
    assert error["details"] == {"limit": 2}


# --- SSRF ------------------------------------------------------------------------------------

PRIVATE_TARGETS = [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://0.0.0.0/hook", "unspecified"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "reason"), PRIVATE_TARGETS)
def test_private_loopback_and_link_local_targets_are_refused_when_not_allowed(
    category: Any, settings: Any, url: str, reason: str
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    client, _ = key_client()
    error = error_of(client.post(URL, {"url": url, "window": "day", "rule": "reach_first"}, format="json"), 400)
    [message] = error["details"]["url"]
    assert f" {reason} address" in message, message
    assert not WebhookSubscription.objects.exists()


def test_public_addresses_pass_the_check_without_a_lookup() -> None:
    for url in ("https://93.184.216.34/hook", "http://[2606:2800:220:1:248:1893:25c8:1946]:8080/x?y=1"):
        outbound.url_check(url, allow_private=False)
    # Allowed private targets are not even resolved: local runs and tests look nothing up.
    outbound.url_check("http://no-such-host.invalid/hook", allow_private=True)
    with pytest.raises(outbound.TargetRefused, match="does not resolve"):
        outbound.url_check("http://no-such-host.invalid/hook", allow_private=False)


# --- the evaluator's rules -------------------------------------------------------------------


def fired(subscription: dict[str, Any]) -> list[tuple[int, int | None, int | None]]:
    deliveries = WebhookDelivery.objects.filter(subscription_id=subscription["id"]).order_by("id")
    return [(d.video_id, d.rank, d.previous_rank) for d in deliveries]


@pytest.mark.cluster
@pytest.mark.django_db
def test_rules_fire_on_changes_between_two_readings(make_video: MakeVideo, apply_events: Apply) -> None:
    client, _ = key_client()
    a, b, c, d = (make_video() for _ in range(4))
    apply_events([*likes(a.id, 4), *likes(b.id, 3), *likes(c.id, 2), *likes(d.id, 1)])  # a, b, c, d
    enter = subscribe(client, "https://h.example.com/", rule="enter_top", n=2)
    leave = subscribe(client, "https://h.example.com/", rule="leave_top", n=2, category="music")
    first = subscribe(client, "https://h.example.com/", rule="reach_first")
    assert services.webhooks_evaluate() == []  # the first reading is the baseline
    assert WatchedList.objects.count() == 2  # the global and the music list of the day window
    assert services.webhooks_evaluate() == []  # nothing changed

    apply_events(likes(c.id, 5))  # c 35, a 20, b 15, d 5: c enters the top 2 and reaches #1, b leaves
    created = services.webhooks_evaluate()
    assert len(created) == 3
    assert fired(enter) == [(c.id, 1, 3)]
    assert fired(leave) == [(b.id, 3, 2)]
    assert fired(first) == [(c.id, 1, 3)]
    assert services.webhooks_evaluate() == []  # fired once, not again at the next reading

    apply_events(likes(d.id, 20))  # d 105: #1; c falls to #2 (still top 2), a to #3
    services.webhooks_evaluate()
    assert fired(enter)[1:] == [(d.id, 1, 4)]
    assert fired(leave)[1:] == [(a.id, 3, 2)]
    assert fired(first)[1:] == [(d.id, 1, 4)]
    body = json.loads(WebhookDelivery.objects.filter(subscription_id=first["id"]).latest("id").body)
    assert body | {"idempotency_key": "k", "detected_at": "t"} == {
        "idempotency_key": "k",
        "subscription_id": first["id"],
        "rule": "reach_first",
        "n": 1,
        "window": "day",
        "category": None,
        "video_id": d.id,
        "rank": 1,
        "previous_rank": 4,
        "score": 105.0,
        "detected_at": "t",
    }


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_a_video_that_leaves_the_list_fires_leave_top_with_a_null_rank(
    make_video: MakeVideo, apply_events: Apply
) -> None:
    from videos.services import video_set_status

    client, _ = key_client()
    a, b = make_video(), make_video()
    apply_events([*likes(a.id, 2), *likes(b.id, 1)])
    leave = subscribe(client, "https://h.example.com/", rule="leave_top", n=1)
    services.webhooks_evaluate()
    video_set_status(video_id=a.id, status="hidden")
    services.webhooks_evaluate()
    assert fired(leave) == [(a.id, None, 1)]


@pytest.mark.django_db
def test_new_subscriptions_revoked_keys_and_unbuilt_scopes_do_not_fire(
    make_video: MakeVideo, apply_events: Apply
) -> None:
    client, api_key = key_client()
    a, b = make_video(), make_video()
    apply_events([*likes(a.id, 2), *likes(b.id, 1)])
    early = subscribe(client, "https://h.example.com/", rule="reach_first")
    services.webhooks_evaluate()
    apply_events(likes(b.id, 5))  # b takes #1 ...
    late = subscribe(client, "https://h.example.com/", rule="reach_first")  # ... before this one existed
    services.webhooks_evaluate()
    assert fired(early) == [(b.id, 1, 2)] and fired(late) == []

    api_key.revoked = True
    api_key.save()
    apply_events(likes(a.id, 10))
    assert services.webhooks_evaluate() == []  # a revoked key's subscriptions are not evaluated
    api_key.revoked = False
    api_key.save()

    from core.redis import redis_client
    from leaderboard import keys as rk

    redis_client().delete(rk.ready_key(rk.GLOBAL))  # the global scope is being rebuilt
    assert services.webhooks_evaluate() == []
    from leaderboard.windows import WINDOWS
    from scoring.rebuild import rankings_rebuild

    rankings_rebuild()
    leave = subscribe(client, "https://h.example.com/", rule="leave_top", n=1)
    services.webhooks_evaluate()
    # The category's shard restarted empty: the global list, the union of the categories', waits
    # for that scope's rebuild, or its videos would seem to leave the top.
    redis_client().delete(
        rk.ready_key(rk.scope_for(a.category_id)), *(rk.ranking_key(w, a.category_id) for w in WINDOWS)
    )
    assert services.webhooks_evaluate() == [] and fired(leave) == []
    rankings_rebuild()
    assert services.webhooks_evaluate() == [] and fired(leave) == []


# --- deliveries (in this process) -----------------------------------------------------------


def one_delivery(make_video: MakeVideo, apply_events: Apply, url: str) -> tuple[dict[str, Any], int]:
    """A reach_first subscription to ``url`` and the delivery of its first firing."""
    client, _ = key_client()
    a, b = make_video(), make_video()
    apply_events([*likes(a.id, 2), *likes(b.id, 1)])
    subscription = subscribe(client, url, rule="reach_first")
    services.webhooks_evaluate()
    apply_events(likes(b.id, 5))
    [delivery_id] = services.webhooks_evaluate()
    return subscription, delivery_id


@pytest.mark.django_db
def test_a_delivery_is_signed_and_recorded(make_video: MakeVideo, apply_events: Apply, receiver: Receiver) -> None:
    subscription, delivery_id = one_delivery(make_video, apply_events, receiver.url)
    assert services.webhook_delivery_attempt(delivery_id=delivery_id).status == "delivered"
    [request] = receiver.requests
    body = verify(subscription["secret"], request)
    assert (body["subscription_id"], body["rule"], body["rank"], body["previous_rank"]) == (
        subscription["id"],
        "reach_first",
        1,
        2,
    )
    assert request.headers["x-delivery-attempt"] == "1"
    assert request.headers["user-agent"].startswith("realtime-video-ranking-webhooks/")
    delivery = WebhookDelivery.objects.get(id=delivery_id)
    assert (delivery.status, delivery.attempts, delivery.delivered_at is not None) == ("delivered", 1, True)
    assert list(WebhookAttempt.objects.values_list("number", "status_code", "error")) == [(1, 200, "")]
    # A duplicate of the task (a redelivery) finds it done and sends nothing.
    assert services.webhook_delivery_attempt(delivery_id=delivery_id).status == "skipped"
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_failures_are_retried_with_growing_jittered_waits_then_given_up(
    make_video: MakeVideo, apply_events: Apply, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOKS_RETRY_BASE_S = 2.0
    settings.WEBHOOKS_RETRY_MAX_DELAY_S = 8.0
    settings.WEBHOOKS_TIMEOUT_S = 0.5
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    _, delivery_id = one_delivery(make_video, apply_events, receiver.url)
    receiver.statuses = [500]
    waits = []
    for expected_error in ("HTTP 500", "TimeoutError", "ConnectionRefusedError"):
        if expected_error == "TimeoutError":
            receiver.delay_s = 1.0  # longer than the timeout
        if expected_error == "ConnectionRefusedError":
            WebhookSubscription.objects.update(url=closed)
        outcome = services.webhook_delivery_attempt(delivery_id=delivery_id)
        assert outcome.status == "retry" and outcome.retry_in is not None
        waits.append(outcome.retry_in)
        attempt = WebhookAttempt.objects.latest("number")
        assert attempt.error.startswith(expected_error), attempt.error
        WebhookDelivery.objects.filter(id=delivery_id).update(next_attempt_at=timezone.now())  # due now
    # Waits double from the base up to the cap, each in the upper half of its ceiling: 1-2, 2-4, 4-8 s.
    assert [1.0 <= waits[0] <= 2.0, 2.0 <= waits[1] <= 4.0, 4.0 <= waits[2] <= 8.0] == [True] * 3
    assert [a.status_code for a in WebhookAttempt.objects.order_by("number")] == [500, None, None]

    # An attempt that would start after WEBHOOKS_RETRY_FOR_S since the change is not made: given up.
    settings.WEBHOOKS_RETRY_FOR_S = 1
    assert services.webhook_delivery_attempt(delivery_id=delivery_id).status == "failed"
    delivery = WebhookDelivery.objects.get(id=delivery_id)
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert services.webhook_delivery_attempt(delivery_id=delivery_id).status == "skipped"


@pytest.mark.django_db
def test_the_address_is_checked_again_at_delivery_time(
    make_video: MakeVideo, apply_events: Apply, receiver: Receiver, settings: Any
) -> None:
    """The URL passed when it was registered; by delivery time it must pass again (DNS rebinding)."""
    _, delivery_id = one_delivery(make_video, apply_events, receiver.url)
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    assert services.webhook_delivery_attempt(delivery_id=delivery_id).status == "retry"
    assert receiver.requests == []
    error = WebhookAttempt.objects.get().error
    assert error.startswith("refused:") and "127.0.0.1, a loopback address" in error


@pytest.mark.django_db
def test_lost_deliveries_are_found_and_deleted_subscriptions_take_theirs_along(
    make_video: MakeVideo, apply_events: Apply, receiver: Receiver
) -> None:
    subscription, delivery_id = one_delivery(make_video, apply_events, receiver.url)
    assert services.webhook_deliveries_lost() == []  # just recorded: its task is on its way
    WebhookDelivery.objects.filter(id=delivery_id).update(next_attempt_at=timezone.now() - services.LOST_AFTER * 2)
    assert services.webhook_deliveries_lost() == [delivery_id]
    WebhookSubscription.objects.filter(id=subscription["id"]).delete()
    assert services.webhook_delivery_attempt(delivery_id=delivery_id).status == "skipped"
    assert receiver.requests == []


@pytest.mark.django_db
def test_staff_see_every_subscription_and_each_deliverys_status_in_the_admin(
    make_video: MakeVideo, apply_events: Apply, receiver: Receiver
) -> None:
    subscription, delivery_id = one_delivery(make_video, apply_events, receiver.url)
    receiver.statuses = [502]
    services.webhook_delivery_attempt(delivery_id=delivery_id)
    staff = User.objects.create_superuser("editor", "editor@example.com", "pw")
    browser = Client()
    browser.force_login(staff)
    page = browser.get("/admin/rankings/webhooksubscription/").content.decode()
    assert receiver.url.replace("&", "&amp;") in page and "0 delivered, 1 pending, 0 failed" in page
    assert subscription["secret"] not in page
    detail = browser.get(f"/admin/rankings/webhooksubscription/{subscription['id']}/change/").content.decode()
    assert subscription["secret"] not in detail
    deliveries = browser.get("/admin/rankings/webhookdelivery/").content.decode()
    assert "Pending" in deliveries and "HTTP 502" in deliveries
    attempts = browser.get(f"/admin/rankings/webhookdelivery/{delivery_id}/change/").content.decode()
    assert "502" in attempts


# --- end to end: beat evaluates, a Celery worker delivers ----------------------------------------


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The worker's retries wait a fraction of a second here instead of seconds.
    monkeypatch.setenv("WEBHOOKS_RETRY_BASE_S", "0.2")
    with running(worker(tmp_path), beat(tmp_path)):
        yield


def ready(subscription: dict[str, Any]) -> bool:
    """The evaluator read the list after the subscription was created: the next change fires it."""
    created = WebhookSubscription.objects.get(id=subscription["id"]).created_at
    return WatchedList.objects.filter(read_at__gt=created).exists()


@pytest.mark.e2e
@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_a_rank_change_is_posted_signed_within_five_seconds(
    make_video: MakeVideo, apply_events: Apply, receiver: Receiver, stack: None
) -> None:
    client, _ = key_client()
    sport = CategoryFactory(slug="sport", name="Sport")
    a, b, other = make_video(), make_video(), make_video(category=sport)
    apply_events([*likes(a.id, 3), *likes(b.id, 1), *likes(other.id, 1)])
    subscription = subscribe(client, receiver.url, rule="enter_top", n=1, category="music")
    assert wait_for(lambda: ready(subscription), timeout=30), "the evaluator never read the list"

    apply_events(likes(b.id, 3))  # b 20 > a 15: b enters the top 1 of music
    changed = time.monotonic()
    assert wait_for(lambda: receiver.requests, timeout=10), "no delivery"
    latency = receiver.requests[0].at - changed
    print(f"\nrank change to webhook POST: {latency * 1000:.0f} ms")
    assert latency <= 5.0
    body = verify(subscription["secret"], receiver.requests[0])
    assert (body["video_id"], body["rank"], body["previous_rank"], body["category"]) == (b.id, 1, 2, "music")
    uuid.UUID(body["idempotency_key"])

    time.sleep(2.5)  # more readings: the change fires once
    assert len(receiver.requests) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_retried_until_it_succeeds(
    make_video: MakeVideo, apply_events: Apply, receiver: Receiver, stack: None
) -> None:
    client, _ = key_client()
    a, b = make_video(), make_video()
    apply_events([*likes(a.id, 2), *likes(b.id, 1)])
    subscription = subscribe(client, receiver.url, rule="reach_first")
    assert wait_for(lambda: ready(subscription), timeout=30), "the evaluator never read the list"
    receiver.statuses = [500, 503]

    apply_events(likes(b.id, 5))
    assert wait_for(lambda: len(receiver.requests) == 3, timeout=20), len(receiver.requests)
    bodies = [verify(subscription["secret"], r) for r in receiver.requests]
    assert bodies[0] == bodies[1] == bodies[2]  # one delivery: same key, body and signature each time
    assert len({r.headers["x-signature"] for r in receiver.requests}) == 1
    assert [r.headers["x-delivery-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    gaps = [later.at - earlier.at for earlier, later in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, gaps  # waits of 0.1-0.2 s, then 0.2-0.4 s
    assert wait_for(lambda: WebhookDelivery.objects.get().status == "delivered", timeout=5)
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 3
    attempts = WebhookAttempt.objects.filter(delivery=delivery).order_by("number")
    assert [a.status_code for a in attempts] == [500, 503, 200]
