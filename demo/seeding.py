"""``manage.py seed``: categories, users, videos and an engagement history, start to end.

One deterministic event stream (for a given ``seed`` and hour, ``demo.history``) feeds
one of three sinks (``demo.sinks``), so the counters come out the same whichever way
the events travel:

- ``db``: hourly counters written straight to Postgres in bulk, then a full rankings
  rebuild. Millions of rows in minutes.
- ``kafka``: wire events produced to the events topic; the bridge and the workers
  count them like client traffic.
- ``api``: batches POSTed to ``/api/v1/events/``: the whole path, API key included.

Every write goes through the service of the app that owns the table.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection, connections, transaction
from django.utils import timezone

from core.progress import Progress, progress_none
from demo.catalogue import SEED_EMAIL_DOMAIN, Catalog, catalog_existing, categories_seed, users_seed, videos_seed
from demo.history import History, SeedEvent, event_history_generate, event_kinds
from demo.plan import API_AGE_MARGIN_S, SeedError, SeedPlan, SeedResult, Timeline, plan_check
from demo.sinks.api import events_post_api
from demo.sinks.db import counters_write
from demo.sinks.kafka import events_produce_kafka
from leaderboard import store
from rankings.services import snapshots_reset
from scoring.ledger import window_rollover
from scoring.rebuild import rankings_rebuild
from scoring.services import counters_analyze, counters_reset
from videos.models import Video
from videos.services import (
    catalogue_analyze,
    owners_delete,
    video_bulk_set_status,
    video_search_indexes_create,
    video_search_indexes_drop,
    videos_reset,
)

logger = logging.getLogger(__name__)


def seed_reset() -> None:
    """Wipe videos, counters, the batch ledger, dedupe keys, snapshots and seeded users.

    Sequences restart, so the same seed gives the same video ids and counters.
    Categories, event types, staff users and API keys stay.
    """
    with transaction.atomic():
        # Downstream first: the counters reference the videos.
        counters_reset()
        snapshots_reset()
        videos_reset()
        owners_delete(email_domain=SEED_EMAIL_DOMAIN)
    store.projection_clear()


def data_seed(*, plan: SeedPlan, progress: Progress | None = None) -> SeedResult:
    """Create the catalogue and its event history as ``plan`` says; rankings are rebuilt or fed live."""
    plan_check(plan=plan)
    # Objects alive now (Django's, then the catalogue's million-entry lists) outlive the run,
    # and every full collection would walk them again while the stream allocates millions of
    # small tuples: frozen, the collector looks only at new objects (about 1/6 less CPU for the events).
    gc.freeze()
    try:
        return _seed(plan=plan, progress=progress)
    finally:
        gc.unfreeze()


def _seed(*, plan: SeedPlan, progress: Progress | None) -> SeedResult:
    report = progress or progress_none
    result = SeedResult(via=plan.via)
    now = plan.now or timezone.now()
    # The same margin on every path, so that one --seed gives one history whichever way it is written.
    timeline = Timeline.ending(now=now, days=plan.days, age_margin_s=API_AGE_MARGIN_S)
    kinds = event_kinds()

    if plan.reset:
        started = time.monotonic()
        seed_reset()
        result.seconds["reset"] = time.monotonic() - started
    started = time.monotonic()
    deferred = _search_indexes_deferred(plan)
    with transaction.atomic():
        if deferred:
            video_search_indexes_drop()
        category_ids = categories_seed()
        user_ids = users_seed(count=plan.users, seed=plan.seed, joined_before=now, progress=report)
        catalog = videos_seed(
            count=plan.videos,
            seed=plan.seed,
            category_ids=category_ids,
            owner_ids=user_ids,
            timeline=timeline,
            final_status=plan.via != "api",
            progress=report,
        )
        if not catalog.ids:
            catalog = catalog_existing(published_only=plan.via == "api")
        if plan.events and not catalog.ids:
            raise SeedError("no videos to send events to: add some with --videos")
    result.categories, result.users, result.videos = len(category_ids), plan.users, plan.videos
    result.seconds["catalog"] = time.monotonic() - started
    gc.freeze()

    stream = _count_anonymous(
        event_history_generate(
            catalog=catalog,
            users=len(user_ids),
            kinds=kinds,
            timeline=timeline,
            total=plan.events,
            seed=plan.seed,
            zipf=plan.zipf,
        ),
        result,
    )
    # The catalogue is committed: Postgres builds the search indexes on the other core
    # while Python draws the history on this one.
    with _meanwhile(video_search_indexes_create if deferred else None):
        if plan.via == "db":
            started = time.monotonic()
            with transaction.atomic():
                result.events, result.counter_rows = counters_write(
                    stream=stream, catalog=catalog, kinds=kinds, timeline=timeline, total=plan.events, progress=report
                )
            result.seconds["events"] = time.monotonic() - started
    video_search_indexes_create()  # no-op unless the build above failed: the catalogue keeps its indexes

    started = time.monotonic()
    catalogue_analyze()
    counters_analyze()
    result.seconds["analyze"] = time.monotonic() - started

    # Other paths need the new videos in the metadata cache before their first event.
    started = time.monotonic()
    window_rollover()
    result.rebuild = rankings_rebuild(progress=report)
    result.seconds["rebuild"] = time.monotonic() - started
    if plan.via == "db":
        return result

    started = time.monotonic()
    if plan.via == "kafka":
        result.events = events_produce_kafka(
            stream=stream,
            catalog=catalog,
            user_ids=user_ids,
            kinds=kinds,
            total=plan.events,
            flush_every=plan.batch,
            progress=report,
        )
    else:
        result.events = events_post_api(
            stream=stream,
            catalog=catalog,
            user_ids=user_ids,
            kinds=kinds,
            total=plan.events,
            url=plan.url,
            api_key=plan.api_key,
            batch=plan.batch,
            progress=report,
        )
        if plan.videos:
            _statuses_apply(catalog)
    result.seconds["events"] = time.monotonic() - started
    return result


# From this many new videos, the search indexes are dropped for the load and built after it.
DEFER_INDEXES_FROM = 100_000


def _search_indexes_deferred(plan: SeedPlan) -> bool:
    # Only outside any transaction: the build runs on a second connection, which must see the
    # committed catalogue (and would wait forever for the lock of an enclosing transaction).
    return plan.videos >= DEFER_INDEXES_FROM and not connection.in_atomic_block


@contextmanager
def _meanwhile(work: Callable[[], object] | None) -> Iterator[None]:
    """Run ``work`` on a thread of its own (its own database connection) during the block."""
    if work is None:
        yield
        return
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported below, after the block
            failed.append(exc)
        finally:
            connections.close_all()  # this thread's connection only

    thread = threading.Thread(target=run, name="seed-meanwhile", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
        if failed:
            logger.warning("seed: background work failed, redone in the foreground: %r", failed[0])


def _statuses_apply(catalog: Catalog) -> None:
    # The API accepts events for published videos only: hide and remove once the history is in.
    for status in (Video.Status.HIDDEN, Video.Status.REMOVED):
        chosen = [vid for vid, s in zip(catalog.ids, catalog.statuses, strict=True) if s == status]
        if chosen:
            video_bulk_set_status(video_ids=chosen, status=status)


def _count_anonymous(stream: Iterator[tuple[int, list[SeedEvent]]], result: SeedResult) -> History:
    for hour, events in stream:
        result.anonymous += sum(1 for e in events if e[3] is None)
        yield hour, events
