"""Cross-process metrics that the web process exposes at /metrics.

Figures are recorded by several processes: every gunicorn worker (ingest and
read requests), the bridge (consumer lag) and the Celery workers (batches),
possibly on other hosts. In-process prometheus_client objects would give one
partial series per process, and its multiprocess mode only spans one host, so
the figures live in Redis instead: counters and histogram buckets are fields
of ``metrics:*`` hashes bumped with HINCRBY / HINCRBYFLOAT, and /metrics
reads them back and renders them with prometheus_client. Each process adds
its increments up in memory and writes them in one pipelined round trip about
once a second, so recording costs a request no network call. See
docs/observability.md.

Recording never raises: after a failed write, figures are dropped for a few
seconds instead of piling up or making each flush wait for a timeout.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.redis import plain_redis_client as redis_client

logger = logging.getLogger(__name__)

PREFIX = "metrics:"
BRIDGE_LAG_KEY = PREFIX + "bridge:lag"
# The bridge writes lag every few seconds; a stale figure from a stopped bridge must not linger.
BRIDGE_LAG_TTL_S = 120
WRITE_PAUSE_S = 5.0
FLUSH_INTERVAL_S = 1.0
SOURCE_CACHE_S = 10.0
_LABEL = re.compile(r"[^a-z0-9_]+")


# --- definitions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counter:
    name: str
    help: str
    label: str | None = None

    @property
    def key(self) -> str:
        return f"{PREFIX}c:{self.name}"

    def family(self, raw: dict[str, str]) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=[self.label] if self.label else None)
        if self.label is None:
            family.add_metric([], float(raw.get("", 0)))
        else:
            for value, count in sorted(raw.items()):
                family.add_metric([value], float(count))
        return family


@dataclass(frozen=True, slots=True)
class Histogram:
    """Bucket counts (not cumulative) in fields ``<label>|<bucket index>``, the sum in ``<label>|sum``."""

    name: str
    help: str
    buckets: tuple[float, ...]
    label: str | None = None

    @property
    def key(self) -> str:
        return f"{PREFIX}h:{self.name}"

    def observe(self, value: float, label_value: str = "", count: int = 1) -> None:
        """``count`` observations of the same value (e.g. the events of one API request)."""
        # bisect_left: a value equal to a bound belongs to that bucket, as Prometheus' "le" says.
        _buffer.add(self.key, f"{label_value}|{bisect_left(self.buckets, value)}", count)
        _buffer.add(self.key, f"{label_value}|sum", float(value) * count)

    def family(self, raw: dict[str, str]) -> Metric:
        series: dict[str, dict[str, float]] = {}
        for field, value in raw.items():
            label_value, _, slot = field.rpartition("|")
            series.setdefault(label_value, {})[slot] = float(value)
        family = HistogramMetricFamily(self.name, self.help, labels=[self.label] if self.label else None)
        for label_value, slots in sorted(series.items()):
            cumulative, buckets = 0.0, []
            for index, bound in enumerate((*self.buckets, float("inf"))):
                cumulative += slots.get(str(index), 0.0)
                buckets.append((floatToGoString(bound), cumulative))
            labels = [label_value] if self.label else []
            family.add_metric(labels, buckets=buckets, sum_value=slots.get("sum", 0.0))
        return family


EVENTS_ACCEPTED = Counter("ranking_events_accepted", "Events produced to Kafka and answered with 202.")
EVENTS_REJECTED = Counter(
    "ranking_events_rejected",
    "Events refused by POST /api/v1/events/, by error code. A request refused before its body "
    "is read (401, 403, 413, 415, 429) counts as one.",
    label="reason",
)
PRODUCE_SECONDS = Histogram(
    "ranking_produce_seconds",
    "Time to produce one request's events to Kafka and receive every acknowledgement (acks=all).",
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
READ_SECONDS = Histogram(
    "ranking_read_seconds",
    "Duration of ranking read requests (GET /api/v1/rankings...), by endpoint.",
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    label="endpoint",
)
BATCH_SECONDS = Histogram(
    "ranking_batch_duration_seconds",
    "Duration of the Celery task that counts and applies one batch.",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_SIZE = Histogram(
    "ranking_batch_size_messages",
    "Kafka messages per batch handed from the bridge to a Celery task.",
    (1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
)
EVENTS_COUNTED = Counter(
    "ranking_events_counted",
    "Events the worker counted into the hourly counters: their event id (and per-user dedupe key) was new.",
)
EVENTS_DUPLICATE = Counter(
    "ranking_events_duplicate",
    "Events the worker dropped as duplicates: an event id, or a per-user dedupe bucket, already counted.",
)
EVENTS_DEAD_LETTERED = Counter(
    "ranking_events_dead_lettered",
    "Messages the worker could never apply, stored in the dead-letter table, by reason (events.wire.WireError).",
    label="reason",
)
BATCHES_FAILED = Counter(
    "ranking_batches_failed",
    "Batch tasks that gave up, by reason: retries_exhausted (transient errors outlasted every retry; the "
    "sweeper re-queues the batch later), error (a deterministic error; the batch waits for an operator), "
    "time_limit (the soft time limit stopped it).",
    label="reason",
)
EVENT_VISIBLE_SECONDS = Histogram(
    "ranking_event_visible_seconds",
    "From an event's acceptance by the API (accepted_at in its message) to its batch's deltas applied in "
    "Redis, once per counted event; observed by whichever process applied them (worker or sweeper).",
    (0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
COUNTERS = (EVENTS_ACCEPTED, EVENTS_REJECTED, EVENTS_COUNTED, EVENTS_DUPLICATE, EVENTS_DEAD_LETTERED, BATCHES_FAILED)
HISTOGRAMS = (PRODUCE_SECONDS, READ_SECONDS, BATCH_SECONDS, BATCH_SIZE, EVENT_VISIBLE_SECONDS)


# --- recording ---------------------------------------------------------------------


class _Buffer:
    """Increments added up in the process and written to Redis about once a second.

    Recording is then a dict update under a lock, not a network round trip on
    the request path; the price is that a process killed outright loses its
    last second of figures. A daemon thread flushes, started lazily in each
    process (after a fork the child starts its own and drops what it inherited,
    which the parent still owns and flushes).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.pending: dict[tuple[str, str], int | float] = {}
        self.flusher: threading.Thread | None = None
        self.paused_until = 0.0

    def add(self, key: str, field: str, amount: int | float) -> None:
        with self.lock:
            self.pending[(key, field)] = self.pending.get((key, field), 0) + amount
            if self.flusher is None:
                self.flusher = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
                self.flusher.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def flush(self) -> None:
        # One flush at a time, so that a flush returns only once everything added before it is written.
        with self.flush_lock:
            with self.lock:
                pending, self.pending = self.pending, {}
            if not pending or time.monotonic() < self.paused_until:
                return  # while paused the figures are dropped: a backlog would only grow
            try:
                pipe = redis_client().pipeline(transaction=False)
                for (key, field), amount in pending.items():
                    if isinstance(amount, int):
                        pipe.hincrby(key, field, amount)
                    else:
                        pipe.hincrbyfloat(key, field, amount)
                pipe.execute()
            except Exception as exc:  # metrics must never fail a request, a batch or the bridge
                self.paused_until = time.monotonic() + WRITE_PAUSE_S
                # One line, no traceback: an unreachable store is an expected state, not a bug.
                logger.warning("metrics store unreachable (%s); recording paused for %.0f s", exc, WRITE_PAUSE_S)

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.pending = {}
        self.flusher = None


_buffer = _Buffer()
os.register_at_fork(after_in_child=_buffer.after_fork_in_child)
# A process that exits normally (gunicorn worker restart, management command) writes its last figures.
atexit.register(_buffer.flush)


def metrics_flush() -> None:
    """Write this process's pending figures now (before a scrape, in tests)."""
    _buffer.flush()


def metrics_reset() -> None:
    """Write what is pending, then delete every recorded figure (tests start from zero)."""
    _buffer.flush()
    client = redis_client()
    keys = [metric.key for metric in (*COUNTERS, *HISTOGRAMS)]
    client.delete(*keys, BRIDGE_LAG_KEY)


def metrics_recording_resume() -> None:
    """Forget an earlier write failure (tests, or after a known Redis restart)."""
    _buffer.paused_until = 0.0


def label_value(raw: str) -> str:
    """A bounded, Prometheus-safe label value: a caller can never mint new series at will."""
    return _LABEL.sub("_", raw.lower())[:40] or "unknown"


def events_accepted(n: int) -> None:
    if n > 0:
        _buffer.add(EVENTS_ACCEPTED.key, "", n)


def events_rejected(reason: str, n: int = 1) -> None:
    if n > 0:
        _buffer.add(EVENTS_REJECTED.key, label_value(reason), n)


def produce_latency(seconds: float) -> None:
    PRODUCE_SECONDS.observe(seconds)


def ranking_read_observed(*, endpoint: str, seconds: float) -> None:
    READ_SECONDS.observe(seconds, label_value(endpoint))


def batch_observed(size: int, seconds: float) -> None:
    BATCH_SIZE.observe(float(size))
    BATCH_SECONDS.observe(seconds)


def events_counted(*, counted: int, duplicates: int, dead_letters: Mapping[str, int]) -> None:
    """What one batch did with its messages, once its transaction committed."""
    if counted > 0:
        _buffer.add(EVENTS_COUNTED.key, "", counted)
    if duplicates > 0:
        _buffer.add(EVENTS_DUPLICATE.key, "", duplicates)
    for code, n in dead_letters.items():
        _buffer.add(EVENTS_DEAD_LETTERED.key, label_value(code), n)


def events_visible(*, accepted: Iterable[Sequence[int]], now: float | None = None) -> None:
    """Events that just became visible in the rankings: ``accepted`` holds pairs of
    (accepted_at in epoch milliseconds, events accepted then); ``now`` is epoch seconds."""
    now_ms = (time.time() if now is None else now) * 1000
    for accepted_ms, count in accepted:
        # Web and worker may run on hosts whose clocks differ a little: never a negative latency.
        EVENT_VISIBLE_SECONDS.observe(max(now_ms - accepted_ms, 0.0) / 1000, count=int(count))


def batch_failed(*, reason: str) -> None:
    _buffer.add(BATCHES_FAILED.key, label_value(reason), 1)


def bridge_lag_record(*, lag: dict[int, int]) -> None:
    """Current lag per partition: a gauge, written at once (the bridge reports it every few seconds)."""
    if not lag:
        return
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.hset(BRIDGE_LAG_KEY, mapping={str(p): v for p, v in lag.items()})
        pipe.expire(BRIDGE_LAG_KEY, BRIDGE_LAG_TTL_S)
        pipe.execute()
    except Exception:  # metrics must never stop the bridge
        logger.warning("could not record bridge lag", exc_info=True)


# --- rendering -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GaugeSource:
    """A gauge an app reads from its own tables at scrape time (core knows no app's models)."""

    name: str
    help: str
    label: str
    read: Callable[[], dict[str, int]]


_sources: list[GaugeSource] = []
_sources_lock = threading.Lock()
_source_cache: dict[str, tuple[float, dict[str, int]]] = {}


def gauge_source_register(source: GaugeSource) -> None:
    """Called from an app's ready(); registering the same name again replaces it."""
    with _sources_lock:
        _sources[:] = [s for s in _sources if s.name != source.name] + [source]


def _source_values(source: GaugeSource) -> dict[str, int]:
    """Cached so that scrapes do not count a table each time."""
    with _sources_lock:
        cached = _source_cache.get(source.name)
    if cached is not None and time.monotonic() - cached[0] < SOURCE_CACHE_S:
        return cached[1]
    values = source.read()
    with _sources_lock:
        _source_cache[source.name] = (time.monotonic(), values)
    return values


def gauge_sources_cache_clear() -> None:
    with _sources_lock:
        _source_cache.clear()


def _decoded(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(raw: dict[Any, Any]) -> dict[str, str]:
    return {_decoded(k): _decoded(v) for k, v in raw.items()}


class _StoreCollector(Collector):
    """Reads every figure at scrape time; a store that is down yields ``*_up 0`` instead of an error."""

    def collect(self) -> Iterator[Metric]:
        yield from self._from_redis()
        yield from self._from_sources()

    def _from_redis(self) -> Iterator[Metric]:
        metrics: tuple[Counter | Histogram, ...] = (*COUNTERS, *HISTOGRAMS)
        try:
            pipe = redis_client().pipeline(transaction=False)
            for metric in metrics:
                pipe.hgetall(metric.key)
            pipe.hgetall(BRIDGE_LAG_KEY)
            *raws, lag = [_text(raw) for raw in pipe.execute()]
        except Exception:
            logger.warning("metrics store unreachable while scraping", exc_info=True)
            yield GaugeMetricFamily("ranking_metrics_store_up", "1 if the Redis-held figures could be read.", 0)
            return
        yield GaugeMetricFamily("ranking_metrics_store_up", "1 if the Redis-held figures could be read.", 1)
        for metric, raw in zip(metrics, raws, strict=True):
            yield metric.family(raw)
        family = GaugeMetricFamily(
            "ranking_bridge_lag_messages",
            "Messages in Kafka not yet handed to Celery, per partition, as last reported by the bridge.",
            labels=["partition"],
        )
        for partition, value in sorted(lag.items(), key=lambda item: int(item[0]) if item[0].isdigit() else -1):
            family.add_metric([partition], float(value))
        yield family

    def _from_sources(self) -> Iterator[Metric]:
        with _sources_lock:
            sources = list(_sources)
        for source in sources:
            try:
                values = _source_values(source)
            except Exception:
                logger.warning("could not read %s", source.name, exc_info=True)
                continue
            family = GaugeMetricFamily(source.name, source.help, labels=[source.label])
            for label, value in values.items():
                family.add_metric([label], float(value))
            yield family


def metrics_render() -> bytes:
    """Every figure in the Prometheus text exposition format."""
    _buffer.flush()  # this process's own latest figures, too
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector())
    return bytes(generate_latest(registry))
