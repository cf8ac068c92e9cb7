"""Rank history: each ranking's top positions, taken periodically (previous ranks, movers, lists as
they stood, a video's rank over time); webhooks on rank changes: subscriptions, the evaluator
that notices the changes, and the delivery of each."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import outbound
from core.bulk import tables_truncate
from events.selectors import api_key_ids_usable
from leaderboard import keys as rk
from leaderboard import reads, store
from leaderboard.windows import WINDOWS
from rankings.models import (
    RankingSnapshot,
    RankingSnapshotEntry,
    WatchedList,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)


def snapshot_take(*, now: datetime | None = None) -> int:
    """Record each ranking's top positions (Postgres) and cache them for reads (Redis).

    Each snapshot is stored twice in one transaction: as one row with its entries as JSON
    (a list as it stood, movers, previous ranks) and as one row per entry (a video's history).
    """
    taken_at = now or timezone.now()
    slugs = dict(reads.ranking_scopes())
    snapshots = []
    rows = []
    cached = []
    for window, cid, ranked in reads.ranked_tops(depth=settings.RANKING_SNAPSHOT_DEPTH):
        slug = slugs.get(cid) or ""
        snapshots.append(RankingSnapshot(window=window, category_slug=slug, taken_at=taken_at, entries=ranked))
        rows += [
            RankingSnapshotEntry(
                video_id=vid, window=window, category_slug=slug, taken_at=taken_at, rank=rank, score=score
            )
            for vid, rank, score in ranked
        ]
        cached.append((window, cid, ranked, taken_at.isoformat()))
    cutoff = taken_at - settings.RANKING_SNAPSHOT_RETENTION
    with transaction.atomic():
        RankingSnapshot.objects.bulk_create(snapshots)
        RankingSnapshotEntry.objects.bulk_create(rows, batch_size=5000)
        RankingSnapshot.objects.filter(taken_at__lt=cutoff).delete()
        RankingSnapshotEntry.objects.filter(taken_at__lt=cutoff).delete()
    store.snapshots_cache_write(snapshots=cached)
    return len(snapshots)


def snapshot_cache_restore() -> None:
    """After a rebuild, put the latest snapshot of each ranking back into Redis."""
    cached = []
    for cid, slug in reads.ranking_scopes():
        for window in WINDOWS:
            snap = RankingSnapshot.objects.filter(window=window, category_slug=slug or "").order_by("-taken_at").first()
            if snap is not None:
                cached.append((window, cid, snap.entries, snap.taken_at.isoformat()))
    store.snapshots_cache_write(snapshots=cached)


# --- webhooks on rank changes (docs/webhooks.md) ----------------------------------------------

USER_AGENT = "realtime-video-ranking-webhooks/1"
# A retry may reach its worker a little before the time the previous attempt set (clocks of two
# workers); earlier than this it is a duplicate of a retry still on its way, and is skipped.
EARLY_TOLERANCE = timedelta(seconds=2)
# How long after its due time a pending delivery no task has taken is considered lost.
LOST_AFTER = timedelta(seconds=30)


class SubscriptionLimitReached(Exception):
    pass


def webhook_subscription_create(
    *, api_key_id: str, url: str, window: str, rule: str, n: int, category_slug: str | None = None
) -> WebhookSubscription:
    """A subscription of the key's, with a new signing secret. Raises SubscriptionLimitReached."""
    if WebhookSubscription.objects.filter(api_key_id=api_key_id).count() >= settings.WEBHOOKS_MAX_PER_KEY:
        raise SubscriptionLimitReached()
    return WebhookSubscription.objects.create(
        api_key_id=api_key_id,
        url=url,
        window=window,
        category_slug=category_slug or "",
        rule=rule,
        n=n,
        secret=secrets.token_hex(32),
    )


def webhook_subscription_delete(*, subscription_id: int, api_key_id: str) -> bool:
    """Delete a subscription of the key's (its pending deliveries go with it); False if it has none by that id."""
    deleted, _ = WebhookSubscription.objects.filter(id=subscription_id, api_key_id=api_key_id).delete()
    return deleted > 0


def _rule_fired(
    subscription: WebhookSubscription, previous: dict[int, int], current: dict[int, tuple[int, float]]
) -> list[tuple[int, int | None, int | None, float | None]]:
    """(video id, rank now, rank before, score now) of each video the subscription's rule fires for."""
    n = subscription.n
    rule = subscription.rule
    if rule == WebhookSubscription.Rule.ENTER_TOP:
        return [
            (vid, rank, previous.get(vid), score)
            for vid, (rank, score) in current.items()
            if rank <= n and previous.get(vid, n + 1) > n
        ]
    if rule == WebhookSubscription.Rule.LEAVE_TOP:
        fired: list[tuple[int, int | None, int | None, float | None]] = []
        for vid, before in previous.items():
            rank, score = current.get(vid, (None, None))
            if before <= n and (rank is None or rank > n):
                fired.append((vid, rank, before, score))
        return fired
    return [
        (vid, rank, previous.get(vid), score)
        for vid, (rank, score) in current.items()
        if rank == 1 and previous.get(vid) != 1
    ]


def _delivery(
    subscription: WebhookSubscription, fired: tuple[int, int | None, int | None, float | None], detected_at: datetime
) -> WebhookDelivery:
    vid, rank, previous_rank, score = fired
    key = uuid.uuid4()
    body = {
        "idempotency_key": str(key),
        "subscription_id": subscription.pk,
        "rule": subscription.rule,
        "n": subscription.n,
        "window": subscription.window,
        "category": subscription.category_slug or None,
        "video_id": vid,
        "rank": rank,
        "previous_rank": previous_rank,
        "score": score,
        "detected_at": detected_at.isoformat().replace("+00:00", "Z"),
    }
    return WebhookDelivery(
        subscription=subscription,
        idempotency_key=key,
        video_id=vid,
        rank=rank,
        previous_rank=previous_rank,
        body=json.dumps(body, separators=(",", ":")),
        created_at=detected_at,
        next_attempt_at=detected_at,
    )


def webhooks_evaluate() -> list[int]:
    """Read the top positions of every list that has subscriptions, compare each with its previous
    reading, and record a delivery for every rule that fired; returns the new deliveries' ids.

    Each list's previous reading (WatchedList) is locked while it is compared and replaced, so
    overlapping runs never compare the same pair of readings twice (a locked list is skipped)
    and the deliveries are recorded in the same transaction as the reading they come from. A
    subscription fires only between two readings taken after it was created. Lists whose scope is
    being rebuilt are skipped, or every video would seem to leave the top and enter it again.
    """
    subscriptions = list(WebhookSubscription.objects.order_by("id"))
    usable = api_key_ids_usable(key_ids={s.api_key_id for s in subscriptions})
    by_list: dict[tuple[str, str], list[WebhookSubscription]] = defaultdict(list)
    for subscription in subscriptions:
        if subscription.api_key_id in usable and subscription.window in WINDOWS:
            by_list[(subscription.window, subscription.category_slug)].append(subscription)
    if not by_list:
        return []
    # A list of a category deleted since is not read.
    category_ids = {slug or "": cid for cid, slug in reads.ranking_scopes()}
    by_list = {key: subs for key, subs in by_list.items() if key[1] in category_ids}
    if not by_list:
        return []
    # A global list is the union of every category's (leaderboard.union): it waits for all of them.
    every_scope = [rk.scope_for(cid) for cid in category_ids.values()]
    scopes_of = {slug: [rk.scope_for(cid)] if cid is not None else every_scope for slug, cid in category_ids.items()}
    not_built = set(store.scopes_not_built(scopes={s for _, slug in by_list for s in scopes_of[slug]}))
    WatchedList.objects.bulk_create(
        [WatchedList(window=window, category_slug=slug) for window, slug in by_list], ignore_conflicts=True
    )
    which = Q(pk__in=[])
    for window, slug in by_list:
        which |= Q(window=window, category_slug=slug)
    deliveries: list[WebhookDelivery] = []
    with transaction.atomic():
        rows = [
            row
            for row in WatchedList.objects.select_for_update(skip_locked=True).filter(which)
            if not not_built.intersection(scopes_of[row.category_slug])
        ]
        if not rows:
            return []
        # Read after the lock: a reading taken before another run's newer one must not replace it.
        tops = reads.ranked_tops(
            depth=settings.RANKING_SNAPSHOT_DEPTH,
            lists=[(row.window, category_ids[row.category_slug]) for row in rows],
        )
        read_at = timezone.now()
        for row, (_, _, ranked) in zip(rows, tops, strict=True):
            if row.read_at is not None and ranked != row.entries:
                previous = {int(vid): int(rank) for vid, rank, _ in row.entries}
                current = {int(vid): (int(rank), float(score)) for vid, rank, score in ranked}
                for subscription in by_list[(row.window, row.category_slug)]:
                    if subscription.created_at <= row.read_at:
                        fired = _rule_fired(subscription, previous, current)
                        deliveries += [_delivery(subscription, f, read_at) for f in fired]
            row.entries, row.read_at = ranked, read_at
        WatchedList.objects.bulk_update(rows, ["entries", "read_at"])
        WebhookDelivery.objects.bulk_create(deliveries)
    if deliveries:
        logger.info("webhooks: %d rule(s) fired", len(deliveries))
    return [d.pk for d in deliveries]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    status: str  # delivered, retry, failed (gave up), skipped (not due, taken, done or gone)
    retry_in: float | None = None


def webhook_signature(*, secret: str, body: bytes) -> str:
    """The X-Signature header: ``sha256=`` and the hex HMAC-SHA256 of the raw body, keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _retry_delay(attempt: int) -> float:
    """Seconds before the next attempt after ``attempt`` failed: the ceiling doubles from the base up
    to the cap, and the wait is random in its upper half (jitter: receivers that came back
    together are not hit by every retry at once, and no wait collapses to nothing)."""
    ceiling = min(settings.WEBHOOKS_RETRY_MAX_DELAY_S, settings.WEBHOOKS_RETRY_BASE_S * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def webhook_delivery_attempt(*, delivery_id: int) -> DeliveryOutcome:
    """POST a pending delivery once and record the attempt; say when to try again, if ever.

    A lease (leased_until) makes sure only one worker POSTs a delivery at a time, whatever
    duplicates of its task are around. A non-2xx answer, a timeout, a connection error and a
    target refused by the address check are failures; attempts stop once the next one would
    start more than WEBHOOKS_RETRY_FOR_S after the change was detected.
    """
    now = timezone.now()
    lease = timedelta(seconds=3 * settings.WEBHOOKS_TIMEOUT_S + 5)
    claimed = (
        WebhookDelivery.objects.filter(
            Q(leased_until__isnull=True) | Q(leased_until__lt=now),
            id=delivery_id,
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__lte=now + EARLY_TOLERANCE,
        ).update(leased_until=now + lease)
        == 1
    )
    if not claimed:
        return DeliveryOutcome("skipped")
    delivery = WebhookDelivery.objects.select_related("subscription").get(id=delivery_id)
    subscription = delivery.subscription
    number = delivery.attempts + 1
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Signature": webhook_signature(secret=subscription.secret, body=body),
        "Idempotency-Key": str(delivery.idempotency_key),
        "X-Delivery-Attempt": str(number),
    }
    started_at, started = timezone.now(), time.monotonic()
    status_code: int | None = None
    try:
        answer = outbound.post(
            url=subscription.url,
            body=body,
            headers=headers,
            timeout_s=settings.WEBHOOKS_TIMEOUT_S,
            allow_private=settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS,
        )
        status_code = answer.status
        error = "" if 200 <= answer.status < 300 else f"HTTP {answer.status} {answer.preview[:200]!r}"
    except outbound.TargetRefused as exc:
        error = f"refused: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration_ms = round((time.monotonic() - started) * 1000)
    finished = timezone.now()
    delivery.attempts = number
    delivery.leased_until = None
    delivery.last_error = error[:300]
    outcome = DeliveryOutcome("delivered")
    if not error:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = finished
    else:
        delay = _retry_delay(number)
        if (finished + timedelta(seconds=delay) - delivery.created_at).total_seconds() > settings.WEBHOOKS_RETRY_FOR_S:
            delivery.status = WebhookDelivery.Status.FAILED
            outcome = DeliveryOutcome("failed")
            logger.warning("webhook delivery %s gave up after %d attempts: %s", delivery_id, number, error)
        else:
            delivery.next_attempt_at = finished + timedelta(seconds=delay)
            outcome = DeliveryOutcome("retry", retry_in=delay)
            logger.info("webhook delivery %s attempt %d failed (%s); next in %.1f s", delivery_id, number, error, delay)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error[:300],
        )
        delivery.save(
            update_fields=["attempts", "leased_until", "last_error", "status", "delivered_at", "next_attempt_at"]
        )
    return outcome


def webhook_deliveries_lost(*, limit: int = 1000) -> list[int]:
    """Pending deliveries whose attempt is overdue and that no worker holds: their task was lost
    (a worker died between recording them and queueing it, or the broker dropped it)."""
    now = timezone.now()
    lost = WebhookDelivery.objects.filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now),
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lt=now - LOST_AFTER,
    )
    return list(lost.order_by("next_attempt_at").values_list("id", flat=True)[:limit])


def snapshots_reset() -> None:
    """Forget the rank history (Postgres); the cached latest snapshots in Redis go with the projection."""
    tables_truncate(tables=[RankingSnapshotEntry._meta.db_table, RankingSnapshot._meta.db_table], cascade=True)
