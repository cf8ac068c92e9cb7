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


# --- webhooks on rank changes (docs/webhooks.md) ----------------------------------------------


class WebhookSubscription(models.Model):
    """A client app's request to be told when a rule fires on one ranking list; it belongs to an API key."""

    class Rule(models.TextChoices):
        ENTER_TOP = "enter_top", "A video enters the top n"
        LEAVE_TOP = "leave_top", "A video leaves the top n"
        REACH_FIRST = "reach_first", "A video reaches #1"

    api_key = models.ForeignKey("events.ApiKey", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    # Validated against leaderboard.windows.WINDOWS by the API, not as model choices: a new
    # window must not need a migration.
    window = models.CharField(max_length=16)
    category_slug = models.CharField(max_length=64, blank=True, help_text="Empty for the global ranking.")
    rule = models.CharField(max_length=16, choices=Rule.choices)
    n = models.PositiveIntegerField(help_text="The top positions the rule is about (1 for reach_first).")
    # Kept as is because signing needs it (an HMAC key cannot be a hash); never shown again after creation.
    secret = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["window", "category_slug"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.rule} {self.n} of {self.window}/{self.category_slug or 'global'} -> {self.url}"


class WatchedList(models.Model):
    """The webhook evaluator's last reading of a list that has subscriptions: what the next one is compared with."""

    window = models.CharField(max_length=16)
    category_slug = models.CharField(max_length=64, blank=True)
    entries = models.JSONField(default=list, help_text="[[video_id, rank, score], ...] best first.")
    read_at = models.DateTimeField(null=True, blank=True, help_text="Null until the first reading.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["window", "category_slug"], name="watched_list_unique")]

    def __str__(self) -> str:
        return f"{self.window}/{self.category_slug or 'global'}"


class WebhookDelivery(models.Model):
    """One rule firing for one subscription: the exact body to POST, and how its attempts went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    idempotency_key = models.UUIDField(unique=True)
    video_id = models.BigIntegerField()
    rank = models.IntegerField(null=True, blank=True)
    previous_rank = models.IntegerField(null=True, blank=True)
    # The raw body, stored once: every attempt sends the same bytes, so the same signature.
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    leased_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"delivery {self.pk} of subscription {self.subscription_id}: {self.status}"


class WebhookAttempt(models.Model):
    """One POST of a delivery and what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="Null when no response came back.")
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
