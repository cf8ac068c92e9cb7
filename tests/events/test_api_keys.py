"""API keys: the management commands, authentication outcomes and the verification cache."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from events import selectors
from events.ingest import api_key_create, api_key_mark_used, api_key_mark_used_reset
from events.models import ApiKey
from events.selectors import api_key_verify

URL = "/api/v1/events/"


@pytest.fixture
def video(make_video: Callable[..., Any]) -> Any:
    return make_video()


@pytest.fixture
def send(client: Any, video: Any) -> Callable[..., Any]:
    def post(headers: dict[str, str]) -> Any:
        body = json.dumps({"video_id": video.id, "type": "view"})
        return client.post(URL, data=body, content_type="application/json", headers=headers)

    return post


def _create(name: str) -> str:
    out = io.StringIO()
    call_command("create_api_key", name, "--quiet", stdout=out)
    return out.getvalue().strip()


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert set(error) == {"code", "message", "details"}
    return str(error["message"])


# --- commands ----------------------------------------------------------------------


@pytest.mark.django_db
def test_create_api_key_prints_the_key_once_and_stores_only_its_hash() -> None:
    out = io.StringIO()
    call_command("create_api_key", "mobile app", stdout=out)
    text = out.getvalue()
    api_key = ApiKey.objects.get(name="mobile app")
    raw = next(line for line in text.splitlines() if line.startswith(api_key.prefix + "."))
    assert "not shown again" in text
    assert raw.partition(".")[2] not in api_key.hashed_key
    assert raw not in api_key.id
    assert ApiKey.objects.get_from_key(raw).pk == api_key.pk


@pytest.mark.django_db
def test_create_api_key_rejects_a_bad_name() -> None:
    with pytest.raises(CommandError):
        call_command("create_api_key", "x" * 51, stdout=io.StringIO())


@pytest.mark.django_db
def test_revoke_by_prefix_and_by_name() -> None:
    first, second = _create("web"), _create("tv")
    out = io.StringIO()
    call_command("revoke_api_key", first.partition(".")[0], stdout=out)
    assert "Revoked" in out.getvalue()
    call_command("revoke_api_key", "tv", stdout=io.StringIO())
    assert ApiKey.objects.filter(revoked=True).count() == 2

    out = io.StringIO()
    call_command("revoke_api_key", "tv", stdout=out)
    assert "Already revoked" in out.getvalue()
    assert second


@pytest.mark.django_db
def test_revoke_refuses_an_ambiguous_name_without_all() -> None:
    _create("shared")
    _create("shared")
    with pytest.raises(CommandError, match="Several usable keys"):
        call_command("revoke_api_key", "shared", stdout=io.StringIO())
    assert not ApiKey.objects.filter(revoked=True).exists()

    call_command("revoke_api_key", "shared", "--all", stdout=io.StringIO())
    assert ApiKey.objects.filter(revoked=True).count() == 2


@pytest.mark.django_db
def test_revoke_unknown_key_fails() -> None:
    with pytest.raises(CommandError, match="No API key"):
        call_command("revoke_api_key", "nobody", stdout=io.StringIO())


# --- authentication outcomes ----------------------------------------------------------


def test_missing_key_is_401_with_challenge(send: Callable[..., Any]) -> None:
    response = send({})
    message = _error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"
    assert "X-API-Key" in message
    assert "X-Request-ID" in response


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Api-Key not-a-key"},
        {"Authorization": "Api-Key "},
        {"Authorization": "Bearer abcdefgh.0123456789"},
        {"X-API-Key": ""},
        {"X-API-Key": "abc." + "x" * 200},
        {"X-API-Key": "zzzzzzzz.doesnotexistdoesnotexist12345"},
        # Characters no key has: refused before any query (a NUL made Postgres refuse the lookup: a 500).
        {"Authorization": "Api-Key abc\x00defg.0123456789"},
        {"X-API-Key": "\x00"},
        {"X-API-Key": "abcdéfgh.0123456789"},
        {"X-API-Key": "abcdefgh.0123.456789"},
    ],
    ids=[
        "no-dot",
        "empty",
        "other-scheme",
        "empty-header",
        "too-long",
        "unknown",
        "nul",
        "only-nul",
        "accent",
        "two-dots",
    ],
)
def test_malformed_or_unknown_key_is_401(send: Callable[..., Any], headers: dict[str, str]) -> None:
    response = send(headers)
    _error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Api-Key"


def test_right_prefix_wrong_secret_is_401(send: Callable[..., Any]) -> None:
    raw = api_key_create(name="real")[1]
    prefix = raw.partition(".")[0]
    _error(send({"X-API-Key": f"{prefix}.wrongsecretwrongsecretwrongsecre"}), 401, "authentication_failed")


def test_scheme_is_case_insensitive_and_x_api_key_works(send: Callable[..., Any]) -> None:
    raw = api_key_create(name="real")[1]
    assert send({"Authorization": f"api-key {raw}"}).status_code == 202
    assert send({"X-API-Key": raw}).status_code == 202


def test_revoked_key_is_403(send: Callable[..., Any]) -> None:
    raw = api_key_create(name="gone")[1]
    call_command("revoke_api_key", "gone", stdout=io.StringIO())
    message = _error(send({"X-API-Key": raw}), 403, "api_key_revoked")
    assert "revoked" in message


def test_expired_key_is_403(send: Callable[..., Any]) -> None:
    api_key, raw = api_key_create(name="old")
    api_key.expiry_date = timezone.now() - timedelta(minutes=1)
    api_key.save()
    _error(send({"X-API-Key": raw}), 403, "api_key_expired")


def test_revocation_applies_once_the_cache_entry_is_older_than_its_ttl(
    send: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "API_KEY_CACHE_TTL_S", 0.2)
    raw = api_key_create(name="soon gone")[1]
    assert send({"X-API-Key": raw}).status_code == 202
    call_command("revoke_api_key", "soon gone", stdout=io.StringIO())

    time.sleep(0.25)
    _error(send({"X-API-Key": raw}), 403, "api_key_revoked")


def test_verified_key_is_served_from_the_cache(db: None, django_assert_num_queries: Any) -> None:
    raw = api_key_create(name="cached")[1]
    with django_assert_num_queries(1):
        first = api_key_verify(raw_key=raw)
    with django_assert_num_queries(0):
        assert api_key_verify(raw_key=raw) == first


def test_unknown_key_is_cached_too(db: None, django_assert_num_queries: Any) -> None:
    raw = "zzzzzzzz.doesnotexistdoesnotexist12345"
    with pytest.raises(selectors.ApiKeyInvalid):
        api_key_verify(raw_key=raw)
    with django_assert_num_queries(0), pytest.raises(selectors.ApiKeyInvalid):
        api_key_verify(raw_key=raw)


def test_cache_holds_digests_not_keys(db: None) -> None:
    raw = api_key_create(name="digest")[1]
    api_key_verify(raw_key=raw)
    assert raw not in selectors._keys
    assert all(len(digest) == 64 for digest in selectors._keys)


def test_mark_used_writes_at_most_once_a_minute(db: None) -> None:
    raw = api_key_create(name="busy")[1]
    verified = api_key_verify(raw_key=raw)
    assert api_key_mark_used(api_key=verified) is True
    assert api_key_mark_used(api_key=verified) is False

    # Another process (fresh in-memory stamp) within the minute does not write either.
    api_key_mark_used_reset()
    assert api_key_mark_used(api_key=verified) is False

    ApiKey.objects.filter(pk=verified.id).update(last_used_at=timezone.now() - timedelta(minutes=2))
    api_key_mark_used_reset()
    assert api_key_mark_used(api_key=verified) is True
