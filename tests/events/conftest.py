from __future__ import annotations

from collections.abc import Iterator

import pytest

from events.ingest import api_key_mark_used_reset
from events.selectors import api_key_cache_clear, event_type_names_cache_clear


@pytest.fixture(autouse=True)
def fresh_process_caches() -> Iterator[None]:
    """Each test sees keys and event types as stored now, not as an earlier test cached them."""
    api_key_cache_clear()
    event_type_names_cache_clear()
    api_key_mark_used_reset()
    yield
    api_key_cache_clear()
    event_type_names_cache_clear()
    api_key_mark_used_reset()
