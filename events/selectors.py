"""Reads the ingestion path needs: event type names, published videos, API keys.

Each is sized for the hot path: at most one round trip to Redis or one query to
Postgres per request, and short in-process caches where staleness of a few
seconds is acceptable.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.redis import REDIS_UNAVAILABLE
from events.models import ApiKey, EventType
from leaderboard.reads import video_statuses
from videos.models import Video
from videos.selectors import video_ids_published

logger = logging.getLogger(__name__)

# A new or renamed event type is accepted within this many seconds in every process.
EVENT_TYPES_TTL_S = 5.0
# A revoked key stops working within this many seconds in every process.
API_KEY_CACHE_TTL_S = 5.0
# Bounds memory when clients send many distinct (mostly wrong) keys.
API_KEY_CACHE_MAX = 10_000

PUBLISHED = Video.Status.PUBLISHED.value

_types_lock = threading.Lock()
_types: tuple[float, frozenset[str]] | None = None


def event_type_names() -> frozenset[str]:
    """Names of the known event types, from a cache at most EVENT_TYPES_TTL_S old."""
    global _types
    cached = _types
    now = time.monotonic()
    if cached is not None and now - cached[0] < EVENT_TYPES_TTL_S:
        return cached[1]
    with _types_lock:
        names = frozenset(EventType.objects.values_list("name", flat=True))
        _types = (now, names)
    return names


def event_type_weights() -> dict[int, tuple[str, float]]:
    """id -> (name, weight) of every event type, read now: scores must use the current weights."""
    # Raw: building the ORM's query cost several times the query itself, and every video standings
    # read asks.
    with connection.cursor() as cur:
        cur.execute("SELECT id, name, weight FROM events_eventtype")
        return {int(tid): (str(name), float(weight)) for tid, name, weight in cur.fetchall()}


def event_type_weights_query() -> QuerySet[EventType, Any]:
    """(id, weight) rows of every event type, as a query another app's SQL may join (its current weights)."""
    return EventType.objects.values("id", "weight")


def event_types_by_name() -> dict[str, EventType]:
    return {t.name: t for t in EventType.objects.all()}


def event_type_names_cache_clear() -> None:
    global _types
    _types = None


def videos_published_filter(*, video_ids: Collection[int]) -> set[int]:
    """The subset of ``video_ids`` that exist and are published.

    One call (leaderboard.reads.video_statuses) against the Redis metadata cache, then one Postgres
    query for the ids Redis does not know (cold or rebuilding cache). If Redis
    is down the database answers for all of them, so ingestion keeps working.
    """
    ids = sorted(set(video_ids))
    if not ids:
        return set()
    published: set[int] = set()
    missing: list[int] = ids
    try:
        statuses = video_statuses(video_ids=ids)
    except REDIS_UNAVAILABLE:
        logger.warning("video status cache unreachable; checking %d videos in the database", len(ids))
    else:
        missing = []
        for vid, status in zip(ids, statuses, strict=True):
            if status is None:
                missing.append(vid)
            elif status == PUBLISHED:
                published.add(vid)
    if missing:
        published |= video_ids_published(video_ids=missing)
    return published


# --- API keys --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedApiKey:
    id: str
    prefix: str
    name: str
    expiry_date: datetime | None

    @property
    def has_expired(self) -> bool:
        return self.expiry_date is not None and self.expiry_date < timezone.now()


class ApiKeyInvalid(Exception):
    """Unknown key, or one that does not match its stored hash."""


class ApiKeyRevoked(Exception):
    pass


class ApiKeyExpired(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Entry:
    at: float
    key: VerifiedApiKey | None  # None: the key was checked and is not usable
    error: type[Exception] | None = None


_keys_lock = threading.Lock()
_keys: dict[str, _Entry] = {}


def _digest(raw_key: str) -> str:
    # The cache is keyed by a digest so raw keys never sit in process memory longer than a request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _lookup(raw_key: str) -> _Entry:
    now = time.monotonic()
    try:
        # The library compares the stored hash; it only returns keys that are not revoked.
        obj = ApiKey.objects.get_from_key(raw_key)
    except ApiKey.DoesNotExist:
        prefix = raw_key.partition(".")[0]
        revoked = ApiKey.objects.filter(prefix=prefix, revoked=True).first()
        # Only a caller who holds the whole revoked key learns that it was revoked.
        if revoked is not None and ApiKey.objects.key_generator.verify(raw_key, revoked.hashed_key):
            return _Entry(at=now, key=None, error=ApiKeyRevoked)
        return _Entry(at=now, key=None, error=ApiKeyInvalid)
    verified = VerifiedApiKey(id=str(obj.pk), prefix=obj.prefix, name=obj.name, expiry_date=obj.expiry_date)
    return _Entry(at=now, key=verified)


def api_key_verify(*, raw_key: str) -> VerifiedApiKey:
    """The key behind ``raw_key``, from a cache at most API_KEY_CACHE_TTL_S old.

    Raises ApiKeyInvalid, ApiKeyRevoked or ApiKeyExpired.
    """
    digest = _digest(raw_key)
    entry = _keys.get(digest)
    if entry is None or time.monotonic() - entry.at >= API_KEY_CACHE_TTL_S:
        entry = _lookup(raw_key)
        with _keys_lock:
            if len(_keys) >= API_KEY_CACHE_MAX:
                _keys_prune()
            _keys[digest] = entry
    if entry.key is None:
        raise (entry.error or ApiKeyInvalid)()
    if entry.key.has_expired:
        raise ApiKeyExpired()
    return entry.key


def _keys_prune() -> None:
    now = time.monotonic()
    for digest in [d for d, e in _keys.items() if now - e.at >= API_KEY_CACHE_TTL_S]:
        _keys.pop(digest, None)
    if len(_keys) >= API_KEY_CACHE_MAX:
        _keys.clear()


def api_key_cache_clear() -> None:
    with _keys_lock:
        _keys.clear()


def api_key_ids_usable(*, key_ids: Collection[str]) -> set[str]:
    """Those of ``key_ids`` whose key is neither revoked nor expired, in one query."""
    if not key_ids:
        return set()
    usable = ApiKey.objects.filter(id__in=key_ids, revoked=False).filter(
        Q(expiry_date__isnull=True) | Q(expiry_date__gt=timezone.now())
    )
    return set(usable.values_list("id", flat=True))


def api_keys_matching(*, name_or_prefix: str) -> Iterable[ApiKey]:
    """Keys whose prefix is exactly ``name_or_prefix``, else keys with that name."""
    by_prefix = list(ApiKey.objects.filter(prefix=name_or_prefix))
    return by_prefix or list(ApiKey.objects.filter(name=name_or_prefix))


def event_type_list() -> QuerySet[EventType]:
    return EventType.objects.order_by("name")
