"""Redis clients every process shares: one per URL.

``redis_client()`` is the projection's store (the rankings): one node, or a Redis
Cluster when ``REDIS_CLUSTER`` is on (``REDIS_URL`` names any node; the client
discovers the others). ``plain_redis_client()`` is a single node for figures that
need no sharding (metrics); Celery's broker and the Django cache have URLs of
their own for the same reason (see the README).
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

# What the rankings store raises when it does not answer: redis-py's errors, and on a cluster also
# RedisClusterException (no node reachable, or no slot map while a master restarts), which is not a
# RedisError. Whoever turns "Redis is down" into a 503, a fallback or a later retry catches both.
REDIS_UNAVAILABLE: tuple[type[redis.RedisError], type[RedisClusterException]] = (
    redis.RedisError,
    RedisClusterException,
)

# One quick retry: enough for a dropped idle connection, short enough that a
# dead server turns into a prompt 503 instead of seconds of backoff.
_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 5, "health_check_interval": 30}


@functools.cache
def _client(url: str) -> redis.Redis:
    # One client object per URL: it keeps no per-call state (connections come from the pool), and
    # building a new one for every read cost ~5% of a top-20 request's CPU.
    pool = redis.ConnectionPool.from_url(url, retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1), **_TIMEOUTS)
    return redis.Redis(connection_pool=pool)


@functools.cache
def _cluster_client(url: str) -> RedisCluster:
    # A master that stops answering is replaced in the slot map on the next MOVED/refresh;
    # a couple of attempts ride over a failover without holding a request for long.
    return RedisCluster.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
        **{k: v for k, v in _TIMEOUTS.items() if k != "health_check_interval"},
    )


def redis_client() -> Any:
    """The projection's client (typed Any: redis-py's stubs type replies as bytes | str)."""
    if settings.REDIS_CLUSTER:
        return _cluster_client(settings.REDIS_URL)
    return _client(settings.REDIS_URL)


def plain_redis_client() -> Any:
    """A single-node client for data that is not the projection (metrics)."""
    return _client(settings.METRICS_REDIS_URL)


def is_cluster() -> bool:
    return bool(settings.REDIS_CLUSTER)


def cluster_masters() -> int:
    """How many masters serve the projection (1 on a single node)."""
    if not settings.REDIS_CLUSTER:
        return 1
    return len(_cluster_client(settings.REDIS_URL).get_primaries())
