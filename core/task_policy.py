"""What every Celery task shares: which errors it retries and how, and its time limits (SPEC section 10).

A transient error is one the same call may well not raise a moment later: a
connection lost or refused, a server restarting or failing over, a deadlock or
serialization failure, a lock or statement timeout. Django wraps every such
Postgres error in OperationalError (or InterfaceError for a connection already
closed). Anything else (a data error, a constraint, a bug) fails the same way on
every attempt, so retrying it only delays the alarm and keeps a worker busy.
"""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from redis.exceptions import ClusterDownError, ReadOnlyError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    RedisConnectionError,  # includes BusyLoadingError: a restarted server still loading its data
    RedisTimeoutError,
    ReadOnlyError,  # a replica being promoted
    ClusterDownError,
    TryAgainError,  # a cluster slot being migrated
    # No node of the cluster answers, or none holds the slot map (a master restarting): not a
    # RedisError. Also what a cross-slot call raises, a bug, which still fails after the retries.
    RedisClusterException,
)

# Keyword arguments for @shared_task. Waits before each retry: a random time (full jitter,
# so that workers that failed together do not come back together) up to 1, 2, 4, 8 and
# 16 s; at most about 31 s in all before the task gives up, which stays well inside
# the broker's visibility timeout and the sweeper's lease.
RETRY_TRANSIENT: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 5,
}


def error_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def time_limits(soft_s: int) -> dict[str, Any]:
    """Keyword arguments for @shared_task: a soft time limit and a hard one a little later.

    The soft limit raises SoftTimeLimitExceeded inside the task, so its transaction rolls
    back and a batch task records the failure; the hard limit kills the worker process,
    for a task stuck where no exception reaches it (a blocking C call). The prefork pool
    (make run, docker compose) enforces both; the threads pool of the tests ignores them.
    """
    return {"soft_time_limit": soft_s, "time_limit": soft_s + max(10, soft_s // 5)}
