"""scoring.selectors: what the ledger says is waiting."""

from __future__ import annotations

import pytest
from django.utils import timezone

from scoring.ledger import batch_store
from scoring.models import Batch
from scoring.selectors import batch_pending_counts, batches_unprocessed_count


@pytest.mark.django_db
def test_unprocessed_batches_are_the_stored_ones_not_counted_nor_failed_counted_up_to_the_limit() -> None:
    batches = [batch_store(topic="t", messages=[]) for _ in range(5)]
    Batch.objects.filter(id=batches[0].id).update(processed_at=timezone.now())
    Batch.objects.filter(id=batches[1].id).update(failed_at=timezone.now())
    assert batches_unprocessed_count(limit=10) == 3
    assert batches_unprocessed_count(limit=2) == 2
    assert batch_pending_counts()["unprocessed"] == 3  # the gauge counts the same batches
