"""What scoring owns in Postgres: the counters (source of truth for every score) and the
ledger that makes Kafka -> Postgres -> Redis exactly-once (docs/exactly-once.md)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from scoring.partitions import batch_partition_ensure

# Every counted event inserts or updates a counter row, so whatever a row costs is paid per event.
# The foreign keys have no index of their own: the unique (video, type, bucket) index serves
# lookups by video (a video's history, the delete cascade), and nothing reads by type alone but
# deleting an event type, a rare operator action that may scan. Nor a database constraint: its
# check locks the video's row for every counter row written. Rows are only written for videos read
# under the window lock, whose removal (scoring.moves, ORM cascade) waits for that batch.
_COUNTER_FK: dict[str, Any] = {"related_name": "+", "db_index": False, "db_constraint": False}


class HourlyCounter(models.Model):
    """Source of truth for every score, with MinuteCounter: events and units per (video, type, hour)
    of the events that are not in a minute row (see MinuteCounter)."""

    video = models.ForeignKey("videos.Video", on_delete=models.CASCADE, **_COUNTER_FK)
    event_type = models.ForeignKey("events.EventType", on_delete=models.PROTECT, **_COUNTER_FK)
    hour = models.DateTimeField(help_text="Start of the UTC hour bucket.")
    events = models.BigIntegerField(default=0)
    units = models.FloatField(default=0)
    # Sum of units * 2^((minute - hour) / half-life): what trending needs at minute resolution, kept
    # per hour so that the decayed score of any past event is exact without minute rows.
    trend_units = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video", "event_type", "hour"], name="hourly_counter_unique"),
        ]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self) -> str:
        return f"video {self.video_id} {self.event_type_id} @ {self.hour:%Y-%m-%d %H}:00"


class MinuteCounter(models.Model):
    """Events and units per (video, type, minute), for the events the hour window holds.

    Every counted event is in exactly one counter row. An event whose minute was inside the hour
    window (or ahead of it) when it was counted is in a minute row, and only there; any other event
    is in an hourly row. Once a whole hour has left the window, ``counters_fold`` moves its minute
    rows into the hourly rows, so the per-event write of the live path is one minute row, and the
    hourly rows get one write per (video, type) and hour. A (video, type, hour) bucket's counts are
    its hourly row plus its minute rows: the view ``scoring_hourtotal`` (migration 0009) adds them.
    """

    video = models.ForeignKey("videos.Video", on_delete=models.CASCADE, **_COUNTER_FK)
    event_type = models.ForeignKey("events.EventType", on_delete=models.PROTECT, **_COUNTER_FK)
    minute = models.DateTimeField(help_text="Start of the UTC minute bucket.")
    events = models.BigIntegerField(default=0)
    units = models.FloatField(default=0)
    # units * 2^((minute - hour) / half-life), as HourlyCounter.trend_units: the fold adds it there.
    trend_units = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video", "event_type", "minute"], name="minute_counter_unique"),
        ]
        indexes = [models.Index(fields=["minute"])]

    def __str__(self) -> str:
        return f"video {self.video_id} {self.event_type_id} @ {self.minute:%Y-%m-%d %H:%M}"


class SeenEvent(models.Model):
    """Dedupe keys already counted: event ids and per-user dedupe buckets.

    The table is range-partitioned by ``period`` (migration 0002, scoring/partitions.py).
    In the database the primary key is (key, period), as a partitioned table's must
    include the partition key; the claim keeps ``key`` itself unique across partitions
    (docs/exactly-once.md), which is what Django is told here.
    """

    key = models.UUIDField(primary_key=True)
    period = models.DateField(help_text="First day of the dedupe period the key was claimed in: its partition.")

    def __str__(self) -> str:
        return str(self.key)


class Batch(models.Model):
    """The ledger between Kafka, Postgres and Redis; see docs/exactly-once.md.

    A batch is received (payload stored, offsets then committed), processed
    (counters and dedupe keys written in the same transaction that stores the
    Redis deltas here) and applied (the deltas reached Redis, guarded by a
    marker set inside the same Lua call).

    The table is range-partitioned by the UTC day of ``received_at`` (migration 0002);
    its primary key in the database is (id, received_at), ids being random UUIDs.
    """

    class Source(models.TextChoices):
        KAFKA = "kafka", "Kafka"
        ROLLOVER = "rollover", "Window roll-over"
        REPLAY = "replay", "Dead-letter replay"
        CURATION = "curation", "Curation move"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.KAFKA)
    # Set when the object is made, not at save time, so that save() knows the partition.
    received_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last queued; empty when queueing failed."
    )
    payload = models.JSONField(default=list)
    processed_at = models.DateTimeField(null=True, blank=True)
    xid = models.BigIntegerField(null=True, blank=True, db_index=True)
    deltas = models.JSONField(null=True, blank=True)
    accepted = models.JSONField(
        null=True,
        blank=True,
        help_text="[[accepted_at in epoch ms, events], ...] of the counted events: when the deltas are "
        "applied, the event-to-visible latency is observed from these.",
    )
    applied_at = models.DateTimeField(null=True, blank=True)
    counted = models.IntegerField(default=0)
    failures = models.PositiveSmallIntegerField(default=0, help_text="Times a task gave up on this batch.")
    failed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when the batch is no longer retried by itself (a deterministic error, or failed too often); "
        "an operator retries it from the admin.",
    )
    error = models.TextField(blank=True, help_text="The last error a task gave up with.")

    class Meta:
        indexes = [
            # The sweeper's search for lost batches: unprocessed, queued long ago or never.
            models.Index(fields=["queued_at"], name="batch_unqueued", condition=models.Q(processed_at__isnull=True)),
            models.Index(
                fields=["processed_at"],
                name="batch_unapplied",
                condition=models.Q(processed_at__isnull=False, applied_at__isnull=True),
            ),
            models.Index(fields=["failed_at"], name="batch_failed", condition=models.Q(failed_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.source} batch {self.id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The table is partitioned by receipt day (migration 0002); a new row's partition is
        # made here if the maintenance task has not made it yet, so storing never fails for it.
        if self._state.adding:
            batch_partition_ensure(received_at=self.received_at)
        super().save(*args, **kwargs)


class DeadLetter(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.CharField(max_length=200)
    raw = models.TextField()
    topic = models.CharField(max_length=200, blank=True)
    partition = models.IntegerField(null=True, blank=True)
    offset = models.BigIntegerField(null=True, blank=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reason} @ {self.topic}:{self.partition}:{self.offset}"


class WindowState(models.Model):
    """The minute the sliding windows are anchored at (single row, id=1).

    Every batch reads it under a share lock and the roll-over advances it under
    an exclusive lock, so each bucket enters and leaves a window's sorted set
    exactly once; see docs/exactly-once.md.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    anchor = models.DateTimeField(help_text="Start of the anchored UTC minute.")

    def __str__(self) -> str:
        return f"windows anchored at {self.anchor:%Y-%m-%d %H:%M}"
