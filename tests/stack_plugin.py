"""Start (or reuse) the real PostgreSQL, Valkey and Tansu servers for the tests.

Loaded with ``-p tests.stack_plugin`` so the servers' addresses are in the
environment before pytest-django configures Django. The test stack lives in
its own folder and ports, so it runs beside ``make run``. Servers this plugin
started are stopped at the end unless KEEP_TEST_STACK=1.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("devstack", ROOT / "scripts" / "devstack.py")
assert _spec and _spec.loader
devstack = importlib.util.module_from_spec(_spec)
sys.modules["devstack"] = devstack  # dataclasses look their module up there
_spec.loader.exec_module(devstack)

STACK = devstack.Stack(ROOT / ".devdata" / "test")
_state_before = STACK.load()
_was_running = bool(_state_before) and all(
    devstack._port_open(_state_before.get(name, {}).get("port", 0) or 1) for name in ("postgres", "valkey", "tansu")
)
os.environ.update(STACK.up())
os.environ.setdefault("KAFKA_TOPIC", "video-events-test")


def pytest_unconfigure(config: object) -> None:
    if not _was_running and os.environ.get("KEEP_TEST_STACK") != "1":
        STACK.down()
