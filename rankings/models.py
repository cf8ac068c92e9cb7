from __future__ import annotations

from django.db import models


class WindowState(models.Model):
    """The hour the sliding windows are anchored at (single row, id=1).

    Every batch reads it under a share lock and the roll-over advances it under
    an exclusive lock, so each hour bucket enters and leaves a window's sorted
    set exactly once; see docs/exactly-once.md.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    current_hour = models.DateTimeField()

    def __str__(self) -> str:
        return f"windows anchored at {self.current_hour:%Y-%m-%d %H}:00"


class RankingSnapshot(models.Model):
    """Top positions of one ranking at one time: previous ranks and movers."""

    window = models.CharField(max_length=16)
    category_slug = models.CharField(max_length=64, blank=True, help_text="Empty for the global ranking.")
    taken_at = models.DateTimeField(db_index=True)
    entries = models.JSONField(help_text="[[video_id, rank, score], ...] best first.")

    class Meta:
        indexes = [models.Index(fields=["window", "category_slug", "-taken_at"])]

    def __str__(self) -> str:
        return f"{self.window}/{self.category_slug or 'global'} @ {self.taken_at:%Y-%m-%d %H:%M}"
