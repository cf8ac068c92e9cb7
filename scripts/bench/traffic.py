"""The synthetic client traffic of the ingest and freshness loads: Zipf-popular videos,
the seed's event-type mix, POSTed by client processes."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from httpclient import TRANSPORT_ERRORS, Client, Schedule, api_key_headers

from .config import BATCH

EVENTS_PATH = "/api/v1/events/"
TYPE_MIX = (("view", 60.0), ("watch", 24.0), ("like", 10.0), ("comment", 4.0), ("share", 2.0))
TYPE_NAMES = [t for t, _ in TYPE_MIX]
TYPE_CUM = [sum(w for _, w in TYPE_MIX[: i + 1]) for i in range(len(TYPE_MIX))]


@dataclass
class Traffic:
    """Published videos with Zipf-like popularity and the event-type mix of the seed."""

    video_ids: list[int]
    cum: list[float]
    durations: dict[int, int]
    weights: dict[str, float]
    type_ids: dict[str, int]

    @classmethod
    def load(cls, *, zipf: float, exclude: set[int] | None = None, seed: int = 7) -> Traffic:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SELECT id, duration_seconds FROM videos_video WHERE status = 'published' ORDER BY id")
            rows = cur.fetchall()
            cur.execute("SELECT name, weight, id FROM events_eventtype")
            types = cur.fetchall()
        weights = {str(n): float(w) for n, w, _ in types}
        ids = [int(r[0]) for r in rows if not exclude or r[0] not in exclude]
        random.Random(seed).shuffle(ids)
        cum: list[float] = []
        total = 0.0
        for rank in range(1, len(ids) + 1):
            total += 1.0 / rank**zipf
            cum.append(total)
        durations = {int(r[0]): int(r[1]) for r in rows}
        type_ids = {str(n): int(i) for n, _, i in types}
        return cls(video_ids=ids, cum=cum, durations=durations, weights=weights, type_ids=type_ids)


def events_body(traffic: Traffic, rng: random.Random, n: int, user_prefix: str, seq: int) -> bytes:
    """A POST body of ``n`` events. Every event has its own user id, so none is a dedupe repeat
    and the counters must grow by exactly what was accepted."""
    vids = rng.choices(traffic.video_ids, cum_weights=traffic.cum, k=n)
    kinds = rng.choices(TYPE_NAMES, cum_weights=TYPE_CUM, k=n)
    parts = []
    for i in range(n):
        if kinds[i] == "watch":
            seconds = 5 + rng.random() * 300
            parts.append(
                f'{{"video_id":{vids[i]},"type":"watch","watch_seconds":{seconds:.1f},"user_id":"{user_prefix}{seq + i}"}}'
            )
        else:
            parts.append(f'{{"video_id":{vids[i]},"type":"{kinds[i]}","user_id":"{user_prefix}{seq + i}"}}')
    return ('{"events":[' + ",".join(parts) + "]}").encode()


@dataclass
class ClientResult:
    events: int = 0
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0


# The rate a run's prepared bodies are built for: about the most the API accepts here (quick runs'
# clients posted 35,000-54,000 events/s). A client that runs out builds more as it goes, counted.
PREPARED_RATE = 50_000.0


@dataclass
class Prepared:
    """Each client's POST bodies for a run, built before the run is timed (``bodies_prepare``), and
    its random source and user-id prefix to go on with once they are sent."""

    bodies: list[list[bytes]]
    rngs: list[random.Random]
    prefixes: list[str]


def bodies_prepare(
    *, traffic: Traffic, clients: int, seconds: float, batch: int = BATCH, rate: float = PREPARED_RATE, tag: str = ""
) -> Prepared:
    """The bodies ``clients`` processes send in ``seconds`` at ``rate`` events/s. Built here, the load
    generator's own work stays out of the CPU a run measures, leaving the cores to the application;
    the clients then only send and read."""
    run = uuid.uuid4().hex[:6]
    count = math.ceil(seconds * rate / batch / clients)
    prepared = Prepared([], [], [])
    for i in range(clients):
        rng, prefix = random.Random(hash((run, i)) & 0xFFFFFFF), f"b{tag}{run}{i}-"
        prepared.bodies.append([events_body(traffic, rng, batch, prefix, n * batch) for n in range(count)])
        prepared.rngs.append(rng)
        prepared.prefixes.append(prefix)
    return prepared


def _post_loop(
    *, port: int, api_key: str, traffic: Traffic, rng: random.Random, prefix: str, bodies: list[bytes],
    deadline: float, batch: int, interval: float | None, out: Any,
) -> None:  # fmt: skip
    """One client process: POST batches until the deadline, back to back, or one per ``interval``
    on a fixed schedule (open loop: each latency from the request's scheduled send time). The
    prepared ``bodies`` go first; every body has user ids of its own, whether or not it is accepted."""
    result = ClientResult()
    client = Client("127.0.0.1", port, timeout=60, headers=api_key_headers(api_key))
    schedule = Schedule(None if interval is None else 1.0 / interval, end=deadline, drain_s=0.0)
    prepared = iter(bodies)
    seq = len(bodies) * batch
    while True:
        body = next(prepared, None)
        if body is None:  # built before its send time: not timed
            body = events_body(traffic, rng, batch, prefix, seq)
            seq += batch
        slot = schedule.next()
        if slot is None:
            break
        try:
            response = client.post(EVENTS_PATH, body)
        except TRANSPORT_ERRORS as exc:
            result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
            continue
        result.latencies.append(time.monotonic() - slot)
        result.requests += 1
        if response.status == 202:
            result.events += batch
        else:
            result.errors[str(response.status)] = result.errors.get(str(response.status), 0) + 1
    client.close()
    times = os.times()
    result.cpu_s = times.user + times.system
    out.put(result)


def post_clients(
    *, port: int, api_key: str, traffic: Traffic, clients: int, seconds: float, batch: int = BATCH,
    rate: float | None = None, tag: str = "", prepared: Prepared | None = None,
) -> tuple[list[Any], Any, float]:  # fmt: skip
    """Start client processes (fork: they share the traffic tables and the prepared bodies without
    copying). Without ``prepared`` each client builds its bodies as it goes."""
    from django.db import connections

    connections.close_all()  # a forked child must not share the parent's database sockets
    if prepared is None:
        prepared = bodies_prepare(traffic=traffic, clients=clients, seconds=0.0, batch=batch, tag=tag)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    deadline = time.monotonic() + seconds
    interval = None if rate is None else batch * clients / rate
    procs = []
    for i in range(clients):
        kwargs = dict(port=port, api_key=api_key, traffic=traffic, rng=prepared.rngs[i], prefix=prepared.prefixes[i],
                      bodies=prepared.bodies[i], deadline=deadline, batch=batch, interval=interval, out=queue)  # fmt: skip
        proc = ctx.Process(target=_post_loop, kwargs=kwargs, daemon=True)
        proc.start()
        procs.append(proc)
    return procs, queue, deadline


def clients_join(procs: list[Any], queue: Any) -> ClientResult:
    total = ClientResult()
    for _ in procs:
        r: ClientResult = queue.get(timeout=120)
        total.events += r.events
        total.requests += r.requests
        total.latencies.extend(r.latencies)
        total.cpu_s += r.cpu_s
        for k, v in r.errors.items():
            total.errors[k] = total.errors.get(k, 0) + v
    for proc in procs:
        proc.join(10)
    return total
