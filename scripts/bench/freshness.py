"""Stage 2, freshness: from a POST's 202 to the score change seen through the API, under a
steady background load."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from httpclient import Client, api_key_headers

from .config import FRESH_BATCH, FRESH_CLIENTS, FRESH_RATE
from .ingest import db_now, wait_applied
from .traffic import EVENTS_PATH, Traffic, clients_join, post_clients
from .util import percentile, timed_bar


def _video_score(client: Client, video_id: int) -> float | None:
    response = client.get(f"/api/v1/rankings/videos/{video_id}/")
    data = response.json()
    if response.status != 200:
        raise RuntimeError(f"GET /rankings/videos/{video_id}/ answered {response.status}: {data}")
    score = data["standings"]["all"]["global"]["score"]
    return None if score is None else float(score)


def freshness_probe(
    *, port: int, api_key: str, probe_ids: list[int], deadline: float, poll_s: float = 0.01, timeout: float = 10.0
) -> tuple[list[float], int]:
    """POST one like for a probe video, then poll its standing until the score moves.

    Probe videos get no background traffic, so the first change seen is the probe's own event.
    Returns (latencies in seconds, probes that never showed up within ``timeout``).
    """
    rng = random.Random(11)
    client = Client("127.0.0.1", port, timeout=30)
    key = api_key_headers(api_key)  # on the POSTs only: the reads are anonymous, as the API's readers are
    latencies: list[float] = []
    lost = 0
    while time.monotonic() < deadline:
        vid = rng.choice(probe_ids)
        before = _video_score(client, vid)
        event = {"video_id": vid, "type": "like", "user_id": f"probe-{uuid.uuid4().hex}"}
        response = client.post_json(EVENTS_PATH, event, headers=key)
        accepted = time.perf_counter()
        if response.status != 202:
            raise RuntimeError(f"probe POST answered {response.status}")
        while True:
            if _video_score(client, vid) != before:
                latencies.append(time.perf_counter() - accepted)
                break
            if time.perf_counter() - accepted > timeout:
                lost += 1
                break
            time.sleep(poll_s)
        time.sleep(rng.uniform(0.05, 0.15))  # probes are spread out, not back to back
    client.close()
    return latencies, lost


def freshness_run(
    *, port: int, api_key: str, traffic: Traffic, probe_ids: list[int], seconds: float, rate: float = FRESH_RATE,
    batch: int = FRESH_BATCH, clients: int = FRESH_CLIENTS,
) -> dict[str, Any]:  # fmt: skip
    """Probes under a background load of ``rate`` events/s, open loop: ``clients`` processes each
    send a batch of ``batch`` events on a fixed schedule, whatever the answers' delays."""
    since = db_now()
    procs, queue, deadline = post_clients(
        port=port,
        api_key=api_key,
        traffic=traffic,
        clients=clients,
        seconds=seconds,
        batch=batch,
        rate=rate,
        tag="f",
    )
    with timed_bar(seconds, "probing"):
        latencies, lost = freshness_probe(port=port, api_key=api_key, probe_ids=probe_ids, deadline=deadline)
        background = clients_join(procs, queue)
    wait_applied(since, background.events + len(latencies) + lost, 60.0)
    elapsed = seconds
    return {
        "background_target_per_s": rate,
        "background_per_s": background.events / elapsed,
        "background_errors": sum(background.errors.values()),
        "probes": len(latencies),
        "lost": lost,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }
