"""Curation moves videos in and out of scopes: hidden, republished, recategorised, deleted.

A move is a ledger batch like any other: recorded in the transaction that changes
the video, with deltas computed from the counters under the exclusive window lock,
and applied after commit (or by the repair sweeper). Counting batches take that lock
shared and read the video's status and category after taking it, so every batch is
wholly before a move (its deltas went to the old scopes and the move's totals include
them) or wholly after it (its deltas go to the new scopes). That keeps every scope
exact per slot without reading anything from another slot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from leaderboard.keys import scope_for
from leaderboard.windows import epoch
from scoring.buckets import videos_history
from scoring.ledger import batch_apply, current_xid, window_anchor_locked
from scoring.models import Batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VideoState:
    status: str | None  # None: the video does not exist (created or deleted)
    category_id: int | None

    @property
    def scopes(self) -> set[str]:
        if self.status != "published" or self.category_id is None:
            return set()
        return {scope_for(self.category_id)}  # the global lists are the union of the categories'


def video_moves_record(*, changes: Sequence[tuple[int, VideoState, VideoState]]) -> str | None:
    """Record (video, before, after) changes as one ledger batch; must run inside the change's transaction.

    Returns the batch id, or None when no video entered or left a scope.
    """
    assert connection.in_atomic_block, "a move must be recorded in the transaction that changes the video"
    moving = {vid: (before.scopes - after.scopes, after.scopes - before.scopes) for vid, before, after in changes}
    moving = {vid: sides for vid, sides in moving.items() if sides[0] or sides[1]}
    if not moving:
        return None
    anchor = window_anchor_locked(exclusive=True)
    deltas: dict[str, list[list[float | int]]] = {}
    for vid, bucket, mask, score in videos_history(video_ids=set(moving), anchor=anchor):
        if not score or not mask:
            continue
        leaving, entering = moving[vid]
        for scope in leaving:
            deltas.setdefault(scope, []).append([vid, epoch(bucket), mask, -score])
        for scope in entering:
            deltas.setdefault(scope, []).append([vid, epoch(bucket), mask, score])
    batch = Batch.objects.create(
        source=Batch.Source.CURATION,
        processed_at=timezone.now(),
        deltas=deltas,
        xid=current_xid(),
        applied_at=None if deltas else timezone.now(),
    )
    batch_id = str(batch.id)
    if deltas:
        transaction.on_commit(lambda: _apply(batch_id))
    logger.info("curation moved %d video(s): batch %s, %d scope(s)", len(moving), batch_id, len(deltas))
    return batch_id


def _apply(batch_id: str) -> None:
    try:
        batch_apply(batch_id=batch_id)
    except Exception:  # Redis down: the repair sweeper applies the stored batch later
        logger.warning("could not apply curation batch %s now; repair will", batch_id, exc_info=True)
