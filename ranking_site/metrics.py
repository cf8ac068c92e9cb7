"""Cross-process metrics that the web process exposes at /metrics.

The bridge and the workers run in other processes, so the figures they own
(consumer lag) are written to Redis with a short expiry and read back here.
"""

from __future__ import annotations

import logging

from rankings.redis_keys import redis_client

logger = logging.getLogger(__name__)

BRIDGE_LAG_KEY = "metrics:bridge:lag"


def bridge_lag_record(*, lag: dict[int, int]) -> None:
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        pipe.hset(BRIDGE_LAG_KEY, mapping={str(p): v for p, v in lag.items()})
        pipe.expire(BRIDGE_LAG_KEY, 120)
        pipe.execute()
    except Exception:  # metrics must never stop the bridge
        logger.debug("could not record bridge lag", exc_info=True)
