"""Fixtures of the scripts' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scripts.loopback import LoopbackServer, loopback_serve


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    with loopback_serve() as server:
        yield server
