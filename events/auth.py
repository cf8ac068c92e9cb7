"""API key authentication and the ingestion throttles."""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from events.ingest import api_key_mark_used
from events.selectors import ApiKeyExpired, ApiKeyInvalid, ApiKeyRevoked, VerifiedApiKey, api_key_verify

logger = logging.getLogger(__name__)

SCHEME = "Api-Key"
HEADER = "HTTP_X_API_KEY"
# The library's keys are "<8-char prefix>.<32-char secret>", both of ASCII letters and digits; anything
# else is not worth a query (and a NUL in the prefix would make Postgres refuse the query: a 500).
MAX_KEY_LENGTH = 150
_KEY_FORM = re.compile(r"[A-Za-z0-9]+\.[A-Za-z0-9]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class ApiClient:
    """The caller behind a verified key; stands in for request.user."""

    api_key: VerifiedApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False

    def __str__(self) -> str:
        return f"api key {self.api_key.prefix} ({self.api_key.name})"


class KeyRevoked(exceptions.PermissionDenied):
    default_detail = "This API key has been revoked; ask for a new one."
    default_code = "api_key_revoked"


class KeyExpired(exceptions.PermissionDenied):
    default_detail = "This API key has expired; ask for a new one."
    default_code = "api_key_expired"


def raw_key_of(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == SCHEME.lower():
            return value.strip()
        if HEADER not in request.META:
            raise exceptions.AuthenticationFailed(
                f"Unsupported Authorization scheme; send 'Authorization: {SCHEME} <key>' or 'X-API-Key: <key>'."
            )
    value = request.META.get(HEADER)
    return value.strip() if value is not None else None


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Api-Key <key>`` or ``X-API-Key: <key>``.

    Missing key: 401 (through HasApiKey). Malformed or unknown: 401. Revoked or
    expired: 403, so a client can tell "fix your config" from "get a new key".
    """

    def authenticate(self, request: Request) -> tuple[ApiClient, VerifiedApiKey] | None:
        raw_key = raw_key_of(request)
        if raw_key is None:
            return None
        if len(raw_key) > MAX_KEY_LENGTH or not _KEY_FORM.fullmatch(raw_key):
            raise exceptions.AuthenticationFailed("Malformed API key.")
        try:
            api_key = api_key_verify(raw_key=raw_key)
        except ApiKeyRevoked:
            raise KeyRevoked() from None
        except ApiKeyExpired:
            raise KeyExpired() from None
        except ApiKeyInvalid:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        api_key_mark_used(api_key=api_key)
        return ApiClient(api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return SCHEME


class HasApiKey(BasePermission):
    message = f"An API key is required: send 'Authorization: {SCHEME} <key>' or 'X-API-Key: <key>'."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, VerifiedApiKey):
            # Raised here because DRF's own NotAuthenticated would drop this message.
            raise exceptions.NotAuthenticated(self.message)
        return True


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the two ways to send a key as alternatives in the OpenAPI schema."""

    target_class = "events.auth.ApiKeyAuthentication"
    name = ["ApiKeyAuth", "ApiKeyHeader"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"ApiKeyAuth": []}, {"ApiKeyHeader": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": f"'{SCHEME} <key>'",
            },
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The key itself."},
        ]


class FixedWindowThrottle(SimpleRateThrottle):
    """A counter per client and window in the Django cache (Redis).

    DRF's SimpleRateThrottle keeps every request timestamp in one cached list,
    which at thousands of requests a minute means reading and writing that
    whole list on each request, without atomicity. A fixed-window counter is
    one atomic INCR; the price is that a client may burst up to twice the rate
    across a window boundary.
    """

    cache = cache
    num_requests: int | None
    duration: int | None

    def get_rate(self) -> str | None:
        # Read at request time: SimpleRateThrottle copies the rates at import time,
        # which would ignore settings changed later (tests, reloads).
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return None if rate is None else str(rate)

    def ident_for(self, request: Request) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        ident = self.ident_for(request)
        return None if ident is None else f"throttle:{self.scope}:{ident}"

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        self.wait_s = (window + 1) * self.duration - now
        counter = f"{key}:{window}"
        try:
            self.cache.add(counter, 0, timeout=self.duration + 1)
            try:
                count = self.cache.incr(counter)
            except ValueError:  # expired between add and incr
                self.cache.add(counter, 1, timeout=self.duration + 1)
                count = 1
        except Exception:
            # Rate limiting protects the service; losing it briefly must not stop ingestion.
            logger.warning("throttle cache unreachable; allowing request", exc_info=True)
            return True
        return bool(count <= self.num_requests)

    def wait(self) -> float | None:
        return max(1, math.ceil(getattr(self, "wait_s", self.duration or 1)))


class IngestKeyThrottle(FixedWindowThrottle):
    scope = "ingest_key"

    def ident_for(self, request: Request) -> str | None:
        api_key: Any = request.auth
        return api_key.prefix if isinstance(api_key, VerifiedApiKey) else None


class IngestIpThrottle(FixedWindowThrottle):
    scope = "ingest_ip"

    def ident_for(self, request: Request) -> str | None:
        if api_settings.NUM_PROXIES is None:
            # DRF would otherwise key on X-Forwarded-For as sent, which any client can vary
            # to escape the limit; it is trusted only once NUM_PROXIES says how many hops to skip.
            return str(request.META.get("REMOTE_ADDR", ""))
        return self.get_ident(request)
