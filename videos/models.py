from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models, transaction
from django.db.models.functions import Upper


class Category(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Video(models.Model):
    class Status(models.TextChoices):
        PUBLISHED = "published", "Published"
        HIDDEN = "hidden", "Hidden"
        REMOVED = "removed", "Removed"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="videos")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="videos")
    duration_seconds = models.PositiveIntegerField()
    thumbnail_url = models.URLField(max_length=500, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PUBLISHED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["category", "status"]),
            # The admin at a million videos (docs/admin.md): its title search is an icontains,
            # which Postgres runs as UPPER(title) LIKE '%...%': trigrams of that expression
            # answer it without reading every row.
            GinIndex(OpClass(Upper("title"), name="gin_trgm_ops"), name="video_title_upper_trgm"),
            # The changelist's date hierarchy: first/last date and each drill-down range.
            models.Index(fields=["published_at"], name="video_published_at"),
            # What counting an event needs of its video (videos.selectors.video_facts), from the index
            # alone: every batch looks up thousands of random ids, and the table's pages are not cached.
            models.Index(fields=["id"], include=["duration_seconds", "status", "category"], name="video_facts"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(duration_seconds__gt=0), name="video_duration_positive"),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Receivers of post_save (the projection) record their follow-up in this transaction,
        # so that it commits or rolls back with the change itself.
        with transaction.atomic():
            super().save(*args, **kwargs)

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED
