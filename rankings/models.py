from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.db import models


class RankingSnapshot(models.Model):
    """Top positions of one ranking at one time: previous ranks, movers, lists as they stood (``as_of``)."""

    window = models.CharField(max_length=16)
    category_slug = models.CharField(max_length=64, blank=True, help_text="Empty for the global ranking.")
    taken_at = models.DateTimeField(db_index=True)
    entries = models.JSONField(help_text="[[video_id, rank, score], ...] best first.")

    class Meta:
        indexes = [models.Index(fields=["window", "category_slug", "-taken_at"])]

    def __str__(self) -> str:
        return f"{self.window}/{self.category_slug or 'global'} @ {self.taken_at:%Y-%m-%d %H:%M}"


class RankingSnapshotEntry(models.Model):
    """One position of one snapshot, stored again row by row so a video's rank history is one index range.

    The key starts with the video: a week of one video's points in one list is a single
    range of the primary key (about a millisecond), where reading them out of the
    snapshots' JSON means decompressing every snapshot of the list (docs/rank-history.md).
    """

    pk = models.CompositePrimaryKey("video_id", "window", "category_slug", "taken_at")
    video_id = models.BigIntegerField()
    window = models.CharField(max_length=16)
    category_slug = models.CharField(max_length=64, blank=True, help_text="Empty for the global ranking.")
    taken_at = models.DateTimeField()
    rank = models.IntegerField()
    score = models.FloatField()

    class Meta:
        verbose_name_plural = "ranking snapshot entries"
        # Rows arrive in time order, so a BRIN index (a few pages) finds the expired ones to delete.
        indexes = [BrinIndex(fields=["taken_at"], name="rankings_entry_taken_brin")]

    def __str__(self) -> str:
        return f"video {self.video_id} #{self.rank} in {self.window}/{self.category_slug or 'global'}"
