from __future__ import annotations

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class EventType(models.Model):
    name = models.SlugField(max_length=32, unique=True)
    weight = models.FloatField(help_text="Score added per unit of this event; may be negative.")
    dedupe_window_seconds = models.PositiveIntegerField(
        default=0,
        help_text="Events of this type by the same user on the same video count once per window (0: no dedupe).",
    )
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(AbstractAPIKey):
    """Ingestion key: only a hash is stored; revocable in the admin."""

    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
