"""Time partitions of the dedupe keys (``SeenEvent``) and the batch ledger (``Batch``).

Both tables only grow by inserts and expire as a whole after a retention, so
they are range-partitioned by time and expire by dropping partitions: no
row-by-row DELETE, no dead tuples for vacuum. Partitions are created ahead by
the maintenance task and, so that an insert never fails for lack of one, on
demand by whoever inserts. There is no DEFAULT partition: a row in it would
block creating the partition that covers it. docs/exactly-once.md says why the
dedupe guarantee holds across partitions.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

SEEN_TABLE = "scoring_seenevent"
BATCH_TABLE = "scoring_batch"

# One SeenEvent partition per period of this many days. A claim probes every older
# live partition for the key, so the width trades that probe (one per key here) against
# keys kept at most retention + width days; docs/exactly-once.md has the measurements.
# Fixed: existing partitions are aligned on it.
SEEN_PERIOD_DAYS = 8
# Keys must outlive every resend the API still accepts (events up to 7 days old) plus a
# day of processing lag, as when they were pruned by age.
SEEN_RETENTION = timedelta(days=8)
# Batches are read by the sweeper and the rebuild only until applied; kept a little
# longer for inspection. A partition holding a batch not yet applied is never dropped.
BATCH_RETENTION = timedelta(days=2)
BATCH_AHEAD_DAYS = 2
SEEN_AHEAD = timedelta(days=2)

# pg advisory lock ids (as scoring.rebuild's): one creator of a table's partitions at a time.
_CREATE_LOCKS = {SEEN_TABLE: 7_246_002, BATCH_TABLE: 7_246_003}
# Dropping takes an exclusive lock on the parent table; waiting behind a long transaction
# would stall every insert queued behind the drop, so it gives up and retries next run.
DROP_LOCK_TIMEOUT = "2s"
EPOCH = date(1970, 1, 1)

# Partitions known to exist, and until when (monotonic clock): entered only after the
# creating or observing transaction commits, so that a rolled-back creation is never
# remembered, and forgotten after a minute, so that a partition dropped behind this
# process's back costs at most a minute of retried inserts, never a stuck one.
_KNOWN_FOR_S = 60.0
_known: dict[str, float] = {}


def partitions_cache_clear() -> None:
    """Forget which partitions exist (tests: their transactions roll creations back)."""
    _known.clear()


def seen_period(*, day: date) -> date:
    """First day of the dedupe period holding ``day`` (periods are aligned on 1970-01-01)."""
    return day - timedelta(days=(day - EPOCH).days % SEEN_PERIOD_DAYS)


def _name(parent: str, start: date) -> str:
    return f"{parent}_p{start:%Y%m%d}"


# Whether a table of this name exists, read from pg_class with the statement's own snapshot. Not
# to_regclass: a name lookup that misses is cached in the backend, and waiting for the advisory lock
# does not invalidate that cache, so after another process created the partition and committed,
# to_regclass still said "absent" and the CREATE failed ("already exists"), failing the batch.
_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = %s AND relnamespace = current_schema()::regnamespace)"


def _partition_ensure(*, parent: str, start: date, lower: date, upper: date) -> bool:
    """Create and attach the partition starting on ``start`` unless it exists; True if created.

    Runs in the caller's transaction when there is one, so a batch that needs a
    partition creates it and goes on. CREATE + ATTACH takes only a SHARE UPDATE
    EXCLUSIVE lock on the parent (CREATE ... PARTITION OF would take an ACCESS
    EXCLUSIVE one), so concurrent inserts and claims are not blocked.
    """
    name = _name(parent, start)
    if _known.get(name, float("-inf")) > time.monotonic():
        return False
    created = False
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(_EXISTS, [name])
        if not cur.fetchone()[0]:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCKS[parent]])
            cur.execute(_EXISTS, [name])
            if not cur.fetchone()[0]:
                # CHECK constraints too: ATTACH refuses a child without every constraint of the parent.
                # Storage too: the ledger's payload is kept uncompressed (scoring migration 0007).
                cur.execute(
                    f"CREATE TABLE {quote(name)} "
                    f"(LIKE {quote(parent)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
                )
                cur.execute(
                    f"ALTER TABLE {quote(parent)} ATTACH PARTITION {quote(name)} FOR VALUES FROM (%s) TO (%s)",
                    [lower, upper],
                )
                created = True
                logger.info("partition %s created", name)
    transaction.on_commit(lambda: _known.__setitem__(name, time.monotonic() + _KNOWN_FOR_S))
    return created


def seen_partition_ensure(*, period: date) -> bool:
    """The SeenEvent partition of a dedupe period; True if it had to be created."""
    return _partition_ensure(
        parent=SEEN_TABLE, start=period, lower=period, upper=period + timedelta(days=SEEN_PERIOD_DAYS)
    )


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def batch_partition_ensure(*, received_at: datetime) -> bool:
    """The Batch partition of the UTC day of ``received_at``; True if it had to be created."""
    day = received_at.astimezone(UTC).date()
    return _partition_ensure(
        parent=BATCH_TABLE, start=day, lower=_day_start(day), upper=_day_start(day + timedelta(days=1))
    )


def _partitions(parent: str) -> list[tuple[str, date]]:
    """The attached partitions of ``parent`` and the first day each covers (from its name)."""
    pattern = re.compile(rf"^{parent}_p(\d{{8}})$")
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [parent],
        )
        names = [r[0] for r in cur.fetchall()]
    found = []
    for name in names:
        match = pattern.match(name)
        if match is None:
            logger.warning("partition %s of %s not named by this module; left alone", name, parent)
            continue
        found.append((name, datetime.strptime(match.group(1), "%Y%m%d").date()))
    return found


def _drop(name: str) -> bool:
    quote = connection.ops.quote_name
    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
            cur.execute(f"DROP TABLE {quote(name)}")
    except DatabaseError:
        logger.warning("partition %s not dropped (busy); the next run retries", name, exc_info=True)
        return False
    _known.pop(name, None)
    logger.info("partition %s dropped", name)
    return True


def _batches_pending(name: str) -> bool:
    # Two probes, each answered by one of the ledger's partial indexes.
    quote = connection.ops.quote_name
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM {quote(name)} WHERE processed_at IS NULL) "
            f"OR EXISTS (SELECT 1 FROM {quote(name)} WHERE processed_at IS NOT NULL AND applied_at IS NULL)"
        )
        return bool(cur.fetchone()[0])


def _anchor_day() -> date | None:
    with connection.cursor() as cur:
        cur.execute("SELECT anchor FROM scoring_windowstate WHERE id = 1")
        row = cur.fetchone()
    return None if row is None else row[0].astimezone(UTC).date()


@dataclass
class PartitionsMaintained:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # old enough to drop, but still needed or busy


def partitions_maintain(*, now: datetime | None = None) -> PartitionsMaintained:
    """Create the partitions of the coming days, drop those past their retention.

    Dedupe periods expire relative to the window anchor's day as well as the
    clock: claims go to the anchor's period, so a lagging anchor keeps its
    keys' partitions alive until it has moved on by the full retention.
    """
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    out = PartitionsMaintained()

    anchor = _anchor_day()
    reference = today if anchor is None else min(today, anchor)

    for period in sorted({seen_period(day=d) for d in (reference, today, today + SEEN_AHEAD)}):
        if seen_partition_ensure(period=period):
            out.created.append(_name(SEEN_TABLE, period))
    for ahead in range(BATCH_AHEAD_DAYS + 1):
        day = today + timedelta(days=ahead)
        if batch_partition_ensure(received_at=_day_start(day)):
            out.created.append(_name(BATCH_TABLE, day))

    for name, start in _partitions(SEEN_TABLE):
        if start + timedelta(days=SEEN_PERIOD_DAYS) <= reference - SEEN_RETENTION:
            (out.dropped if _drop(name) else out.kept).append(name)

    for name, start in _partitions(BATCH_TABLE):
        if _day_start(start + timedelta(days=1)) > now - BATCH_RETENTION:
            continue
        # Nothing turns an applied batch back into a pending one, and nothing is
        # received into a past day, so the answer cannot change before the drop.
        if _batches_pending(name):
            logger.warning("partition %s past its retention still holds unapplied batches; kept", name)
            out.kept.append(name)
        elif _drop(name):
            out.dropped.append(name)
        else:
            out.kept.append(name)
    return out
