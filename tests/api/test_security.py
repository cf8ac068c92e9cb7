"""Every refusal, tried over real HTTP where the transport matters: keys, throttles,
body size, the admin, CORS, the metrics token and error pages that leak nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from events.ingest import api_key_create, api_key_mark_used_reset, api_key_revoke
from events.selectors import api_key_cache_clear, event_type_names_cache_clear
from ranking_site import urls as site_urls

ROOT = Path(__file__).resolve().parents[2]
EVENTS = "/api/v1/events/"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_key_caches() -> Iterator[None]:
    # Verified keys and event types are cached per process; the live server shares this one.
    for clear in (api_key_cache_clear, event_type_names_cache_clear, api_key_mark_used_reset):
        clear()
    yield
    for clear in (api_key_cache_clear, event_type_names_cache_clear, api_key_mark_used_reset):
        clear()


@pytest.fixture
def video(make_video: Callable[..., Any], rankings_ready: None) -> Any:
    return make_video()


@pytest.fixture
def raw_key() -> str:
    return api_key_create(name="security test")[1]


@pytest.fixture
def send(live_server: Any, video: Any) -> Callable[..., requests.Response]:
    def post(headers: dict[str, str] | None = None, body: Any = None, data: bytes | None = None) -> requests.Response:
        payload = data if data is not None else json.dumps(body or {"video_id": video.id, "type": "view"}).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return requests.post(live_server.url + EVENTS, data=payload, headers=hdrs, timeout=30)

    return post


def error_of(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code, error
    assert set(error) == {"code", "message", "details"}
    return dict(error)


def _rates(key: str, ip: str) -> dict[str, Any]:
    return {**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"ingest_key": key, "ingest_ip": ip}}


# --- API keys ---------------------------------------------------------------------------


def test_ingest_without_key_is_401_with_a_challenge(send: Callable[..., requests.Response]) -> None:
    response = send()
    error = error_of(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == "Api-Key"
    assert "Api-Key" in error["message"] and "X-API-Key" in error["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Api-Key nodot"},
        {"Authorization": "Api-Key AbCdEfGh.not-the-secret-of-any-key"},
        {"X-API-Key": "AbCdEfGh.not-the-secret-of-any-key"},
        {"Authorization": "Bearer something"},
    ],
    ids=["malformed", "unknown", "unknown-x-api-key", "other-scheme"],
)
def test_ingest_with_bad_key_is_401(send: Callable[..., requests.Response], headers: dict[str, str]) -> None:
    error_of(send(headers), 401, "authentication_failed")


def test_ingest_with_revoked_key_is_403(send: Callable[..., requests.Response], raw_key: str) -> None:
    assert send({"Authorization": f"Api-Key {raw_key}"}).status_code == 202
    api_key_revoke(name_or_prefix="security test")
    api_key_cache_clear()  # what the cache's short lifetime does in production
    error = error_of(send({"Authorization": f"Api-Key {raw_key}"}), 403, "api_key_revoked")
    assert "revoked" in error["message"]


def test_keys_are_stored_hashed(raw_key: str) -> None:
    from events.models import ApiKey

    stored = ApiKey.objects.get(name="security test")
    assert raw_key.split(".", 1)[1] not in stored.hashed_key
    assert stored.is_valid(raw_key)


# --- throttles -----------------------------------------------------------------------------


@pytest.mark.parametrize(("key_rate", "ip_rate"), [("2/min", "1000/min"), ("1000/min", "2/min")], ids=["key", "ip"])
def test_throttle_is_429_with_retry_after(
    send: Callable[..., requests.Response], raw_key: str, settings: Any, key_rate: str, ip_rate: str
) -> None:
    settings.REST_FRAMEWORK = _rates(key_rate, ip_rate)
    headers = {"Authorization": f"Api-Key {raw_key}"}
    assert [send(headers).status_code for _ in range(2)] == [202, 202]
    response = send(headers)
    error_of(response, 429, "throttled")
    assert 1 <= int(response.headers["Retry-After"]) <= 61


# --- body size -------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_and_nothing_is_read_past_it(
    send: Callable[..., requests.Response], raw_key: str, video: Any
) -> None:
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    event = {"video_id": video.id, "type": "view", "user_id": "u" * 100}
    body = json.dumps({"events": [event] * (limit // 120 + 10)}).encode()
    assert len(body) > limit
    error = error_of(send({"Authorization": f"Api-Key {raw_key}"}, data=body), 413, "payload_too_large")
    assert str(limit) in error["message"]


# --- admin ---------------------------------------------------------------------------------------


def test_admin_sends_anonymous_users_to_the_login_page(client: Client) -> None:
    for url in ("/admin/", "/admin/events/apikey/", "/admin/videos/video/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_admin_refuses_a_user_who_is_not_staff(client: Client) -> None:
    User.objects.create_user("viewer", password="a-long-password-42", is_staff=False)
    response = client.post("/admin/login/?next=/admin/", {"username": "viewer", "password": "a-long-password-42"})
    assert response.status_code == 200  # the form again, with an error
    assert "staff account" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_admin_lets_staff_in(client: Client) -> None:
    User.objects.create_user("editor", password="a-long-password-42", is_staff=True, is_superuser=True)
    response = client.post("/admin/login/?next=/admin/", {"username": "editor", "password": "a-long-password-42"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_admin_login_form_requires_csrf(db: None) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403


# --- CORS ------------------------------------------------------------------------------------------

APP = "https://app.example.com"


@pytest.fixture
def cors(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [APP]


def test_cors_preflight_from_an_allowed_origin_allows_the_key_headers(
    cors: None, live_server: Any, rankings_ready: None
) -> None:
    response = requests.options(
        live_server.url + EVENTS,
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key, x-request-id",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-api-key", "x-request-id", "authorization"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_cors_read_from_an_allowed_origin_exposes_retry_after_and_request_id(
    cors: None, live_server: Any, rankings_ready: None
) -> None:
    response = requests.get(live_server.url + "/api/v1/rankings/", headers={"Origin": APP}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"retry-after", "x-request-id"}


def test_cors_other_origins_get_no_grant(cors: None, live_server: Any, rankings_ready: None) -> None:
    for origin in ("https://evil.example.net", "http://app.example.com", "null"):
        response = requests.get(live_server.url + "/api/v1/rankings/", headers={"Origin": origin}, timeout=10)
        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers, origin


def test_cors_applies_to_the_api_only(cors: None, live_server: Any, rankings_ready: None) -> None:
    for url in ("/healthz", "/admin/login/"):
        response = requests.get(live_server.url + url, headers={"Origin": APP}, timeout=10)
        assert "Access-Control-Allow-Origin" not in response.headers, url


def test_cors_origins_come_from_the_environment() -> None:
    code = "import django; django.setup(); from django.conf import settings as s; print(s.CORS_ALLOWED_ORIGINS)"
    env = {**os.environ, "CORS_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['https://a.example.com', 'https://b.example.com']"


# --- metrics token ----------------------------------------------------------------------------------


def test_metrics_token_when_set_is_required(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200


# --- error pages leak nothing ---------------------------------------------------------------------------


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret detail from deep inside")


urlpatterns = [path("api/v1/boom/", _boom), *site_urls.urlpatterns]
handler404 = site_urls.handler404
handler500 = site_urls.handler500


def test_unknown_api_url_answers_in_the_error_shape(client: Client) -> None:
    response = client.get("/api/v1/videos/not-a-number/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_crash_answers_500_in_the_error_shape_without_details(db: None) -> None:
    with override_settings(ROOT_URLCONF=__name__):
        response = Client(raise_request_exception=False).get("/api/v1/boom/")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "server_error"
    assert "secret detail" not in response.content.decode()
    assert response["X-Request-ID"]
