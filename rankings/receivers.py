"""Rankings listen to scoring: a rebuild wipes the previous-rank caches, which come back from snapshots."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from rankings.services import snapshot_cache_restore
from scoring.signals import rankings_rebuilt


@receiver(rankings_rebuilt)
def snapshots_restore(sender: Any, **kwargs: Any) -> None:
    snapshot_cache_restore()
