from __future__ import annotations

from django.db import models


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
