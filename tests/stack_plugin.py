"""Start (or reuse) the real PostgreSQL, Valkey and Tansu servers for the tests.

Loaded with ``-p tests.stack_plugin`` so the servers' addresses are in the
environment before pytest-django configures Django. The test stack lives in
its own folder and ports, so it runs beside ``make run``. Several pytest runs
may share it: each gets its own database, Redis databases and Kafka topic, and
the last run to finish stops the servers (unless KEEP_TEST_STACK=1).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tests.scripts_loader import load_script

ROOT = Path(__file__).resolve().parent.parent
devstack = load_script("devstack")

STACK = devstack.Stack(ROOT / ".devdata" / "test")
USERS = STACK.root / "users.json"


def _users(change: int | None = None, remove: int | None = None) -> tuple[list[int], int]:
    """Register/unregister this run; returns live runs and this run's slot (0..14)."""
    STACK.root.mkdir(parents=True, exist_ok=True)
    with open(STACK.root / "users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(USERS.read_text()) if USERS.exists() else {}
        data = {pid: slot for pid, slot in data.items() if devstack._alive(int(pid))}
        slot = -1
        if change is not None:
            used = set(data.values())
            slot = next(s for s in range(15) if s not in used)
            data[str(change)] = slot
        if remove is not None:
            data.pop(str(remove), None)
            if data == {} and os.environ.get("KEEP_TEST_STACK") != "1":
                STACK.down()
        else:
            os.environ.update(STACK.up())
        USERS.write_text(json.dumps(data))
        return [int(p) for p in data], slot


_, SLOT = _users(change=os.getpid())
_base = os.environ["REDIS_URL"].rsplit("/", 1)[0]
os.environ["REDIS_URL"] = f"{_base}/{2 + 2 * SLOT}"
os.environ["CELERY_BROKER_URL"] = f"{_base}/{3 + 2 * SLOT}"

# REDIS_CLUSTER=true: the rankings go to a Valkey cluster of this run's own (a cluster has one
# database, so runs cannot share one); the cache and metrics stay on the single node.
CLUSTER: Any = None  # devstack.Stack, loaded from scripts/
if os.environ.get("REDIS_CLUSTER", "").lower() == "true":
    CLUSTER = devstack.Stack(ROOT / ".devdata" / f"test-cluster-{os.getpid()}", cluster=True)
    CLUSTER.root.mkdir(parents=True, exist_ok=True)
    _state: dict[str, object] = {}
    CLUSTER.cluster_up(_state)
    CLUSTER.save(_state)
    os.environ["CACHE_REDIS_URL"] = os.environ["REDIS_URL"]
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{CLUSTER.load()['cluster'][0]['port']}/0"
# A fresh topic per run: the broker outlives runs, and old messages must not leak in.
os.environ["KAFKA_TOPIC"] = f"video-events-test-{SLOT}-{os.getpid()}"
os.environ["TEST_DATABASE_NAME"] = f"test_ranking_{SLOT}"


def pytest_unconfigure(config: object) -> None:
    from core.kafka import producer_reset

    producer_reset()
    # Kafka clients the run leaves to the interpreter's exit would otherwise log every failed
    # reconnect once the broker below is stopped: noise after the results, about nothing.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if CLUSTER is not None:
        for node in CLUSTER.load().get("cluster", []):
            CLUSTER._kill(node.get("pid"))
        shutil.rmtree(CLUSTER.root, ignore_errors=True)
    _users(remove=os.getpid())
